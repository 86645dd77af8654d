"""Errors that tell the user what to fix.

Every error raised for bad input names the file (when there is one), the field or line at
fault, and what to do about it, so that a user never has to read a traceback to act.
"""

from __future__ import annotations

from os import PathLike


class NearsightError(Exception):
    """Base class of the errors nearsight raises on purpose."""


class InputError(NearsightError, ValueError):
    """Bad input: a file, field or value that nearsight cannot use.

    Args:
        message: what is wrong.
        path: the file at fault, if any.
        field: the key, tag or line at fault, if any.
        fix: one sentence saying what the user should do.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | PathLike[str] | None = None,
        field: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.field = field
        self.fix = fix
        parts = []
        if self.path is not None:
            parts.append(f"{self.path}:")
        if field is not None:
            parts.append(f"[{field}]")
        parts.append(message)
        text = " ".join(parts)
        if fix:
            text += f"\n  fix: {fix}"
        super().__init__(text)


class MissingToolError(NearsightError, RuntimeError):
    """An external program (pw.x, pp.x, mpirun, ...) is not installed or not on PATH."""
