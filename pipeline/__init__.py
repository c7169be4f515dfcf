"""povwatch: monthly early warning of households at risk of poverty through medical costs."""

__version__ = "0.1.0"
