"""`mailboat route ADDRESS [--json]`: where mail to ADDRESS would go, decided by the real engine.

The same Router the server uses (aliases, local domains, `[[route]]`, `[relay].smarthost`) and,
for remote domains, the same DNS look-ups as delivery (`routing.mx`, RFC 5321 §5.1, RFC 7505)
through `[dns].nameservers`. Nothing is sent and nothing is written. A DNS verdict (NXDOMAIN,
null MX, timeout) is an answer, printed as one line with the reply the queue would record.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os

from mailboat.cli.errors import FAILURE
from mailboat.cli.serve import add_config_option, config_from
from mailboat.routing.mx import Destination, DestinationError, resolve_destinations, resolve_smarthost
from mailboat.routing.route import Lmtp, Maildir, Mx, Relay, Route


class _NoAccounts:
    """Stands in for the user database when there is none yet (route must not create it)."""

    def exists(self, address: str) -> bool:
        return False

    def close(self) -> None:
        pass


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("route", help="show where mail to an address would go (local, smarthost, MX hosts)")
    p.add_argument("address", help="recipient address, e.g. bob@example.net")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    add_config_option(p)
    p.set_defaults(func=run_route)


def run_route(args: argparse.Namespace) -> int:
    config = config_from(args)
    from mailboat.accounts import UserStore
    from mailboat.app import build_router, users_path
    from mailboat.resolver.dnspython import DnspythonResolver

    path = users_path(config)
    users = UserStore(path) if os.path.exists(path) else _NoAccounts()
    try:
        router = build_router(config, users)
        resolver = DnspythonResolver(config.dns.nameservers, timeout=config.dns.timeout)
        tls = getattr(config.relay, "tls", "opportunistic")
        report = asyncio.run(_report(router, resolver, args.address, config.relay.mx_port, tls))
    finally:
        users.close()
    print(json.dumps(report, indent=2) if args.json else _text(report))
    return FAILURE if any(r.get("error") for r in report["routes"]) else 0


async def _report(router, resolver, address: str, mx_port: int, tls: str) -> dict:
    address = router.qualify(address)
    local = router.is_local(address)
    report: dict = {"address": address, "local": local, "routes": []}
    if local and not router.recipient_exists(address):
        report["routes"].append({"address": address, "kind": "refused",
                                 "error": "no such local mailbox or alias: refused at RCPT with 550 5.1.1"})
        return report
    finals = router.expand(address)
    if finals != [address]:
        report["expands_to"] = finals
    for final in finals:
        report["routes"].append(await _describe(final, router.route(final), resolver, mx_port, tls))
    return report


async def _describe(address: str, route: Route, resolver, mx_port: int, tls: str) -> dict:
    entry: dict = {"address": address, "kind": route.kind, "error": None}
    match route:
        case Maildir(path=path):
            entry["maildir"] = path
            return entry
        case Lmtp(target=target):
            entry["lmtp"] = target
            return entry
        case Relay(smarthost=smarthost):
            entry.update(smarthost=smarthost, tls=tls)
            lookup = resolve_smarthost(resolver, smarthost)
        case Mx(domain=domain):
            entry.update(domain=domain, port=mx_port, tls=tls)
            lookup = resolve_destinations(resolver, domain, mx_port)
        case _:
            return entry
    try:
        destinations = await lookup
    except DestinationError as exc:
        entry["error"] = f"{exc.text}: mail would be {'bounced' if exc.permanent else 'deferred'} " \
                         f"with {exc.code} {exc.status}"
        return entry
    entry["hosts"] = _hosts(destinations)
    return entry


def _hosts(destinations: list[Destination]) -> list[dict]:
    hosts: list[dict] = []
    for dest in destinations:
        if hosts and hosts[-1]["host"] == dest.host and hosts[-1]["preference"] == dest.preference:
            hosts[-1]["addresses"].append(dest.ip)
        else:
            hosts.append({"host": dest.host, "preference": dest.preference, "port": dest.port,
                          "addresses": [dest.ip]})
    return hosts


def _text(report: dict) -> str:
    lines = [f"{report['address']}: {'local domain' if report['local'] else 'remote domain'}"]
    if "expands_to" in report:
        lines.append(f"  alias, expands to: {', '.join(report['expands_to'])}")
    for route in report["routes"]:
        head = f"  {route['address']}: "
        match route["kind"]:
            case "maildir":
                lines.append(head + f"local delivery to Maildir {route['maildir']}")
            case "lmtp":
                lines.append(head + f"local delivery over LMTP to {route['lmtp']}")
            case "relay":
                lines.append(head + f"relay through smarthost {route['smarthost']} (TLS {route['tls']})")
            case "mx":
                lines.append(head + f"relay to the MX hosts of {route['domain']} "
                                    f"(port {route['port']}, TLS {route['tls']})")
            case kind:
                lines.append(head + kind)
        if route.get("error"):
            lines.append(f"    {route['error']}")
        for index, host in enumerate(route.get("hosts", []), 1):
            pref = f"MX {host['preference']:<3}" if route["kind"] == "mx" else "host  "
            lines.append(f"    {index}. {pref} {host['host']}:{host['port']}  {', '.join(host['addresses'])}")
    return "\n".join(lines)
