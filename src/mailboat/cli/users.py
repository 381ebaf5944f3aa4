"""`mailboat user add|passwd|del|list`: submission accounts and local mailboxes."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time

from mailboat.accounts import UserError, UserStore
from mailboat.cli.errors import USAGE, CliError
from mailboat.cli.serve import add_config_option, config_from
from mailboat.config.load import DEFAULT_CONFIG_FILE
from mailboat.config.names import mailbox
from mailboat.routing.router import has_routing_syntax


def register(sub: argparse._SubParsersAction) -> None:
    user = sub.add_parser("user", help="manage accounts (passwords are stored hashed with scrypt)")
    verbs = user.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name, helptext in (("add", "create an account"), ("passwd", "change an account's password")):
        p = verbs.add_parser(name, help=helptext)
        p.add_argument("address", help="mailbox address, e.g. alice@example.com")
        p.add_argument("--password-stdin", action="store_true", help="read the password as one line from stdin")
        add_config_option(p)
        p.set_defaults(func=run_user)
    p = verbs.add_parser("del", help="delete an account (its Maildir is kept)")
    p.add_argument("address")
    add_config_option(p)
    p.set_defaults(func=run_user)
    p = verbs.add_parser("list", help="list accounts")
    add_config_option(p)
    p.set_defaults(func=run_user)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise CliError("--password-stdin: no password on standard input", USAGE)
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise CliError("no terminal to prompt for the password: use --password-stdin", USAGE)
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise CliError("the two passwords differ; nothing changed", USAGE)
    return first


def _new_account(args: argparse.Namespace, local_domains: list[str]) -> str:
    """The address `user add` stores, or a one-line CliError (exit 2) saying what to write instead.

    The local part is taken exactly when our SMTP server's RCPT parser takes it (SMTPUTF8 local
    parts included); the domain must be one this server receives mail for, or the account could
    never be sent mail.
    """
    try:
        address = mailbox(args.address)
    except ValueError as exc:
        raise CliError(f"{exc}; nothing stored", USAGE) from None
    local, _, domain = address.rpartition("@")
    if has_routing_syntax(local.strip('"')):
        raise CliError(f"{args.address!r}: a local part with %, ! or @ is refused at RCPT (source routing), "
                       "so this account could receive no mail: choose another name; nothing stored", USAGE)
    if domain not in local_domains:
        where = args.config or (DEFAULT_CONFIG_FILE if os.path.exists(DEFAULT_CONFIG_FILE) else None)
        fix = (f"add it to [domains] local in {where}" if where else
               f"add it to [domains] local in a configuration ({DEFAULT_CONFIG_FILE} or --config FILE)")
        raise CliError(f"{address}: {domain} is not a local domain of this server "
                       f"(local domains: {', '.join(local_domains)}): {fix}; nothing stored", USAGE)
    return address


def run_user(args: argparse.Namespace) -> int:
    config = config_from(args)
    path = os.path.join(config.data_dir, "users.db")
    if args.verb == "add":
        args.address = _new_account(args, config.local_domains)
    if args.verb in ("list", "del", "passwd") and not os.path.exists(path):
        if args.verb == "list":
            return 0
        raise CliError(f"no account {args.address}: there are no accounts yet ({path})")
    try:
        store = UserStore(path)
    except OSError as exc:
        raise CliError(f"cannot open {path}: {exc.strerror or exc}") from None
    try:
        match args.verb:
            case "add":
                key = store.add(args.address, _read_password(args))
                print(f"added {key}")
            case "passwd":
                store.passwd(args.address, _read_password(args))
                print(f"password changed for {args.address.lower()}")
            case "del":
                store.delete(args.address)
                print(f"deleted {args.address.lower()}")
            case "list":
                for address, created in store.list():
                    print(f"{address}\t{time.strftime('%Y-%m-%d %H:%M', time.localtime(created))}")
    except UserError as exc:
        raise CliError(str(exc), USAGE if "already exists" not in str(exc) else 1) from None
    finally:
        store.close()
    return 0
