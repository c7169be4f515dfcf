"""povwatch: monthly early warning of households at risk of poverty through medical costs."""

from pathlib import Path

__version__ = "0.1.0"


def code_version() -> str:
    """The package version, with the git commit when running from a checkout."""
    head = Path(__file__).resolve().parent.parent / ".git" / "HEAD"
    try:
        ref = head.read_text(encoding="utf-8").strip()
        if ref.startswith("ref: "):
            ref = (head.parent / ref[5:]).read_text(encoding="utf-8").strip()
        return f"{__version__}+{ref[:12]}"
    except OSError:
        return __version__
