"""The one exception a command raises for a user-facing failure.

`main()` prints it as a single line on stderr and exits with its code: 2 for usage and
configuration mistakes, 1 for operational failures (SPEC "Command line"). Never a traceback.
"""

from __future__ import annotations

USAGE = 2
FAILURE = 1


class CliError(Exception):
    """A failure to report as one line: what was wrong and what to do about it."""

    def __init__(self, message: str, exit_code: int = FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
