"""The one exception a user sees: a one-line reason, never a traceback."""


class PovwatchError(Exception):
    """A failure the user can act on. ``str(err)`` is one line naming file/row/column/reason."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


def invalid(exc: Exception, path: object, what: str) -> PovwatchError:
    """A pydantic ValidationError as one line naming the file and the first bad key."""
    err = exc.errors()[0]  # type: ignore[attr-defined]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    return PovwatchError(f"{path}: invalid {what} at {where}: {err['msg']}")
