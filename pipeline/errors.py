"""The one exception a user sees: a one-line reason, never a traceback."""

import os


class PovwatchError(Exception):
    """A failure the user can act on. ``str(err)`` is one line naming file/row/column/reason."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


def invalid(exc: Exception, path: object, what: str, data: object = None) -> PovwatchError:
    """A pydantic ValidationError as one line naming the file and every bad key.

    One error: ``<file>: invalid <what> at <key>: <reason>``; several: ``<file>: invalid <what>
    (N errors): at <key>: <reason>; at <key>: <reason>``. Given the validated ``data``, the
    names pydantic adds for the branches of a union (``constrained-decimal``,
    ``literal['local']``) are left out of the key, and the reasons at one key are joined.
    """
    by_key: dict[str, list[str]] = {}
    for err in exc.errors():  # type: ignore[attr-defined]
        loc = _data_path(err["loc"], data) if data is not None else list(err["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        msgs = by_key.setdefault(key, [])
        if err["msg"] not in msgs:
            msgs.append(err["msg"])
    parts = [f"at {key}: {' or '.join(msgs)}" for key, msgs in by_key.items()]
    if len(parts) == 1:
        return PovwatchError(f"{path}: invalid {what} {parts[0]}")
    return PovwatchError(f"{path}: invalid {what} ({len(parts)} errors): {'; '.join(parts)}")


def _data_path(loc: tuple, data: object) -> list:
    """The part of a pydantic error location that names keys and indexes of ``data``: a
    union branch's name (``constrained-decimal``, ``literal['local']``, ``IncomeRef``) is not
    in the data and is dropped; a missing key (snake_case) is kept."""
    out: list = []
    node = data
    for part in loc:
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_list or (isinstance(node, dict) and part in node):
            node = node[part]  # type: ignore[index]
        elif (
            isinstance(node, dict)
            and isinstance(part, str)
            and part.isidentifier()
            and part == part.lower()
        ):
            node = None  # a key the data lacks
        else:
            continue  # a union branch's name
        out.append(part)
    return out


def shown(path: object) -> str:
    """A path as messages show it: absolute, ``..`` folded, symlinks kept as the user sees them."""
    return os.path.abspath(os.fspath(path))  # type: ignore[arg-type]
