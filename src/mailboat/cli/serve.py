"""`mailboat serve [--config F]` and `mailboat check-config F`."""

from __future__ import annotations

import argparse
import sys

from mailboat.cli.errors import USAGE, CliError
from mailboat.config import ConfigError, load_config
from mailboat.config.load import find_config


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="configuration file (default: ./mailboat.toml if present, else the embedded default)")


def config_from(args: argparse.Namespace):
    """The Config a command uses, or a one-line CliError (exit 2) per SPEC."""
    try:
        return find_config(getattr(args, "config", None))
    except ConfigError as exc:
        first = exc.errors[0]
        more = f" (and {len(exc.errors) - 1} more: run 'mailboat check-config {exc.source}')" if len(exc.errors) > 1 else ""
        raise CliError(f"{exc.source}: {first}{more}", USAGE) from None


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="run the mail server")
    add_config_option(serve)
    serve.set_defaults(func=run_serve)
    check = sub.add_parser("check-config", help="validate a configuration file without starting")
    check.add_argument("file", metavar="FILE")
    check.set_defaults(func=run_check)


def run_serve(args: argparse.Namespace) -> int:
    config = config_from(args)
    from mailboat.app import StartupError, run  # imported here: the other commands start faster
    from mailboat.log import setup_logging

    setup_logging(config.log.file, config.log.level)
    try:
        run(config)
    except StartupError as exc:
        raise CliError(f"cannot start: {exc}", USAGE) from None
    except OSError as exc:
        raise CliError(f"cannot start: {exc.strerror or exc} ({_where(exc)}): "
                       "is another server using the port? change [[listener]].address") from None
    return 0


def _where(exc: OSError) -> str:
    return str(exc.filename) if exc.filename else "listener"


def run_check(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        for line in exc.errors:
            print(f"{exc.source}: {line}", file=sys.stderr)
        return USAGE
    print(f"{args.file}: ok ({len(config.listener)} listeners, local domains: {', '.join(config.local_domains)})")
    return 0
