"""argparse root of the `mailboat` command.

Each command group lives in its own module exposing ``register(subparsers)``; the sub-parser it
adds sets ``func`` to a callable taking the parsed namespace and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

from mailboat import __version__
from mailboat.cli.errors import USAGE, CliError

# Modules that register sub-commands, in the order `mailboat --help` lists them.
COMMAND_MODULES = (
    "mailboat.cli.serve",
    "mailboat.cli.sendmail",
    "mailboat.cli.queue",
    "mailboat.cli.trace",
    "mailboat.cli.journey",
    "mailboat.cli.route",
    "mailboat.cli.users",
    "mailboat.cli.dkim",
)


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line with exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mailboat", description="mailboat mail transfer agent")
    parser.add_argument("--version", action="version", version=f"mailboat {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a command group still being written
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return USAGE
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"mailboat: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def sendmail_main(argv: list[str] | None = None) -> int:
    """Entry point of `mailboat-sendmail` (the sendmail-compatible front end)."""
    return main(["sendmail", *(sys.argv[1:] if argv is None else argv)])
