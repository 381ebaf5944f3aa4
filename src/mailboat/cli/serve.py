"""`mailboat serve [--config F]` and `mailboat check-config F`."""

from __future__ import annotations

import argparse
import os
import sys

from mailboat.cli.errors import USAGE, CliError
from mailboat.config import ConfigError, load_config
from mailboat.config.load import DEFAULT_CONFIG_FILE, find_config


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="configuration file (default: ./mailboat.toml if present, else the embedded default)")


def load_from(args: argparse.Namespace):
    """The Config named by --config (or the default), or a one-line CliError (exit 2) per SPEC."""
    try:
        return find_config(getattr(args, "config", None))
    except ConfigError as exc:
        first = exc.errors[0]
        more = ""
        if len(exc.errors) > 1:
            more = f" (and {len(exc.errors) - 1} more: run 'mailboat check-config {exc.source}')"
        raise CliError(f"{exc.source}: {first}{more}", USAGE) from None


def config_from(args: argparse.Namespace):
    """The Config a command that works on the data directory uses.

    Run as root with `[server] user` set, the command then acts as that user (effective ids;
    server/privileges.py), after handing it the data directory as `mailboat serve` would (the
    Maildirs excepted: no command here touches them): whatever it creates there (users.db,
    the queue and its WAL, spooled bodies, DKIM keys) belongs to the user the server runs as,
    never to root. The real uid stays the caller's.
    """
    config = load_from(args)
    from mailboat.server import privileges

    try:
        # (not root: nothing to change; a data directory closed to the caller fails as before)
        who = privileges.target(config.server.user) if os.geteuid() == 0 else None
        if who is not None:
            os.makedirs(config.data_dir, mode=0o700, exist_ok=True)
            privileges.take_over(config.data_dir, who, skip=("mail",))
            privileges.act_as(who)
            privileges.check_reachable(config.data_dir, who)
    except (privileges.PrivilegeError, OSError) as exc:
        raise CliError(f"server.user: {exc}", USAGE) from None
    return config


def config_source(args: argparse.Namespace) -> str:
    """The configuration file a command reads, as the start line of the log names it."""
    explicit = getattr(args, "config", None)
    if explicit:
        return os.path.abspath(explicit)
    if os.path.exists(DEFAULT_CONFIG_FILE):
        return os.path.abspath(DEFAULT_CONFIG_FILE)
    return "embedded default"


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="run the mail server")
    add_config_option(serve)
    serve.set_defaults(func=run_serve)
    check = sub.add_parser("check-config", help="validate a configuration file without starting")
    check.add_argument("file", metavar="FILE")
    check.set_defaults(func=run_check)


def run_serve(args: argparse.Namespace) -> int:
    config = load_from(args)  # (it drops root itself, once its listeners are open: daemon.py)
    from mailboat.app import StartupError  # imported here: the other commands start faster
    from mailboat.daemon import run
    from mailboat.log import setup_logging

    setup_logging(config.log.file, config.log.level)
    try:
        run(config, source=config_source(args))
    except StartupError as exc:
        raise CliError(f"cannot start: {exc}", USAGE) from None
    except OSError as exc:
        raise CliError(f"cannot start: {_start_failure(exc)}") from None
    return 0


def _start_failure(exc: OSError) -> str:
    """A file names itself (the data directory, a key); otherwise it was a listener's bind."""
    if exc.filename:
        return f"{exc.strerror or exc} ({exc.filename}): check that path and its permissions"
    return (f"{exc.strerror or exc} (listener): is another server using the port? "
            "change [[listener]].address")


def run_check(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        for line in exc.errors:
            print(f"{exc.source}: {line}", file=sys.stderr)
        return USAGE
    print(f"{args.file}: ok ({len(config.listener)} listeners, local domains: {', '.join(config.local_domains)})")
    return 0
