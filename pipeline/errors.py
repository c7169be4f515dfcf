"""The one exception a user sees: a one-line reason, never a traceback."""


class PovwatchError(Exception):
    """A failure the user can act on. ``str(err)`` is one line naming file/row/column/reason."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))
