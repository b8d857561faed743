"""The one error type dte raises for user-facing failures."""

from __future__ import annotations


class DteError(Exception):
    """A failure the user can act on: `message` says what is wrong, `hint` what to do.

    The CLI prints it as a single line (no traceback) and exits non-zero.
    """

    def __init__(self, message: str, hint: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message
