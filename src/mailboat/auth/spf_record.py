"""SPF record syntax (RFC 7208 §4.6, §5, §6, §12) and macro expansion (§7), without any DNS.

`parse_record` turns a whole record into terms up front because §4.6 says a syntax error
*anywhere* in the record is a permerror, even after a matching mechanism. Macro strings are
checked at parse time and expanded later by `expand`, which takes the facts it needs as a
`MacroContext` (the `p` macro's validated name is looked up by the caller, §7.3).
"""

from __future__ import annotations

import ipaddress
import re
import time
import urllib.parse
from dataclasses import dataclass

MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
_QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_MODIFIER = re.compile(r"([A-Za-z][A-Za-z0-9_.-]*)=(.*)", re.S)
_MECHANISM = re.compile(r"([+\-~?]?)([A-Za-z][A-Za-z0-9_.-]*)([:/].*)?", re.S)
# RFC 7208 §7.1: macro-expand = ( "%{" macro-letter transformers *delimiter "}" ) / "%%" / "%_" / "%-"
_MACRO = re.compile(r"%(?:\{([A-Za-z])(\d*)(r?)([.\-+,/_=]*)\}|(.))", re.I | re.S)
_CIDR4 = r"(?:0|[1-9]\d?)"  # ip4-cidr-length: no leading zeros, range checked below
_CIDR6 = r"(?:0|[1-9]\d{0,2})"
_DUAL_CIDR = re.compile(rf"^(.*?)(?:/({_CIDR4}))?(?://({_CIDR6}))?$", re.S)
_TOPLABEL = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9]+|[A-Za-z0-9]+-[A-Za-z0-9-]*[A-Za-z0-9]")


class SpfSyntaxError(ValueError):
    """The record or a macro string breaks the grammar: the result is permerror."""


@dataclass(frozen=True, slots=True)
class Mechanism:
    qualifier: str  # "pass" | "fail" | "softfail" | "neutral"
    name: str  # one of MECHANISMS, lower case
    arg: str | None  # domain-spec or network text, unexpanded
    cidr4: int = 32
    cidr6: int = 128

    def __str__(self) -> str:
        text = self.name + (f":{self.arg}" if self.arg is not None else "")
        return text + (f"/{self.cidr4}" if self.cidr4 != 32 else "") + (f"//{self.cidr6}" if self.cidr6 != 128 else "")


@dataclass(frozen=True, slots=True)
class Record:
    mechanisms: tuple[Mechanism, ...]
    redirect: str | None = None
    exp: str | None = None


def is_spf_record(text: str) -> bool:
    """§4.5: the record starts with "v=spf1" followed by a space or the end."""
    return text[:6].lower() == "v=spf1" and (len(text) == 6 or text[6] == " ")


def parse_record(text: str) -> Record:
    """Parse a whole record (already known to start with v=spf1)."""
    if not text.isascii() or any(c < " " or c == "\x7f" for c in text):
        # §4.6.1: terms are separated by SP only; control characters are a syntax error.
        raise SpfSyntaxError("non-ASCII or control character in record")
    mechanisms: list[Mechanism] = []
    modifiers: dict[str, str] = {}
    for term in text[6:].split(" "):
        if not term:
            continue
        mod = _MODIFIER.fullmatch(term)  # a name before ":" or "/" can never contain "="
        if mod:
            name, value = mod.group(1).lower(), mod.group(2)
            check_macro_string(value)
            if name in ("redirect", "exp"):
                if name in modifiers:  # §6: each may appear at most once
                    raise SpfSyntaxError(f"{name}= appears twice")
                check_domain_spec(value)
                modifiers[name] = value
            continue  # §6: unknown modifiers are ignored (but must be well formed)
        mechanisms.append(_parse_mechanism(term))
    return Record(tuple(mechanisms), modifiers.get("redirect"), modifiers.get("exp"))


def _parse_mechanism(term: str) -> Mechanism:
    match = _MECHANISM.fullmatch(term)
    if not match:
        raise SpfSyntaxError(f"unknown term {term!r}")
    qualifier = _QUALIFIERS.get(match.group(1) or "+", "pass")
    name = match.group(2).lower()
    rest = term[len(match.group(1)) + len(match.group(2)) :]
    if name == "all":
        if rest:
            raise SpfSyntaxError(f"'all' takes no argument: {term!r}")
        return Mechanism(qualifier, name, None)
    if name in ("ip4", "ip6"):
        if not rest.startswith(":"):
            raise SpfSyntaxError(f"{name} needs a network: {term!r}")
        return _parse_ip(qualifier, name, rest[1:])
    if name in ("a", "mx"):
        # The CIDR suffix follows the optional domain-spec: "a:example.com/24//64" or "a/24".
        cidr = _DUAL_CIDR.match(rest)
        assert cidr is not None  # the pattern matches any string
        spec, c4, c6 = cidr.group(1), cidr.group(2), cidr.group(3)
        if c4 is not None and int(c4) > 32 or c6 is not None and int(c6) > 128:
            raise SpfSyntaxError(f"CIDR length out of range: {term!r}")
        arg = _domain_arg(spec, term)
        return Mechanism(qualifier, name, arg, int(c4) if c4 else 32, int(c6) if c6 else 128)
    if name in ("include", "exists", "ptr"):
        arg = _domain_arg(rest, term)
        if arg is None and name != "ptr":
            raise SpfSyntaxError(f"{name} needs a domain: {term!r}")
        return Mechanism(qualifier, name, arg)
    raise SpfSyntaxError(f"unknown mechanism {name!r}")


def _domain_arg(rest: str, term: str) -> str | None:
    if not rest:
        return None
    if not rest.startswith(":") or len(rest) == 1:
        raise SpfSyntaxError(f"bad argument in {term!r}")
    check_macro_string(rest[1:])
    check_domain_spec(rest[1:])
    return rest[1:]


def _parse_ip(qualifier: str, name: str, text: str) -> Mechanism:
    addr, slash, length = text.partition("/")
    try:
        ip = ipaddress.IPv4Address(addr) if name == "ip4" else ipaddress.IPv6Address(addr)
    except ValueError:
        raise SpfSyntaxError(f"bad address in {name}:{text}") from None
    limit = 32 if name == "ip4" else 128
    if slash and not re.fullmatch(_CIDR4 if name == "ip4" else _CIDR6, length) or slash and int(length) > limit:
        raise SpfSyntaxError(f"bad CIDR length in {name}:{text}")
    bits = int(length) if slash else limit
    return Mechanism(qualifier, name, str(ip), bits if name == "ip4" else 32, bits if name == "ip6" else 128)


def check_domain_spec(spec: str) -> None:
    """§7.1: domain-end is "." toplabel ["."] or a macro-expand (checked before expansion)."""
    if spec.endswith("}") and "%{" in spec:
        return
    labels = spec.rstrip(".").split(".") if spec.endswith(".") and not spec.endswith("..") else spec.split(".")
    if len(labels) < 2 or not _TOPLABEL.fullmatch(labels[-1]):
        raise SpfSyntaxError(f"domain-spec {spec!r} does not end in a top label")


def check_macro_string(text: str, explain: bool = False) -> None:
    pos = 0
    for match in _MACRO.finditer(text):
        if "%" in text[pos : match.start()]:
            raise SpfSyntaxError(f"stray % in {text!r}")
        pos = match.end()
        letter, digits, single = match.group(1), match.group(2), match.group(5)
        if single is not None and single not in "%_-":
            raise SpfSyntaxError(f"bad macro %{single} in {text!r}")
        if letter is not None:
            allowed = "slodiphvcrt" if explain else "slodiphv"
            if letter.lower() not in allowed:
                raise SpfSyntaxError(f"macro letter {letter!r} not allowed here")
            if digits and int(digits) == 0:
                raise SpfSyntaxError(f"zero label count in {text!r}")
    if "%" in text[pos:]:
        raise SpfSyntaxError(f"stray % in {text!r}")


@dataclass(frozen=True, slots=True)
class MacroContext:
    """The values §7.3 macros expand to."""

    sender: str  # s: <local-part>@<domain>
    domain: str  # d: the current domain
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    helo: str
    validated_name: str = "unknown"  # p
    receiver: str = "unknown"  # r (explanations only)

    @property
    def local_part(self) -> str:
        return self.sender.rpartition("@")[0] or "postmaster"

    @property
    def sender_domain(self) -> str:
        return self.sender.rpartition("@")[2]


def _macro_value(letter: str, ctx: MacroContext) -> str:
    match letter:
        case "s":
            return ctx.sender
        case "l":
            return ctx.local_part
        case "o":
            return ctx.sender_domain
        case "d":
            return ctx.domain
        case "i":
            if ctx.ip.version == 4:
                return str(ctx.ip)
            # §7.3: dot-format nibbles. Upper case as the RFC 7208 suite expects; DNS ignores case.
            return ".".join(ctx.ip.exploded.replace(":", "").upper())
        case "p":
            return ctx.validated_name
        case "v":
            return "in-addr" if ctx.ip.version == 4 else "ip6"
        case "h":
            return ctx.helo
        case "c":
            return str(ctx.ip)
        case "r":
            return ctx.receiver
        case "t":
            return str(int(time.time()))
    raise SpfSyntaxError(f"unknown macro letter {letter!r}")


def expand(text: str, ctx: MacroContext, explain: bool = False) -> str:
    """Expand a macro-string (§7.4 transformers, §7.3 URL escaping for upper-case letters)."""
    check_macro_string(text, explain)

    def one(match: re.Match[str]) -> str:
        if match.group(5) is not None:
            return {"%": "%", "_": " ", "-": "%20"}[match.group(5)]
        letter, digits, reverse, delims = match.groups()[:4]
        parts = re.split("[" + re.escape(delims or ".") + "]", _macro_value(letter.lower(), ctx))
        if reverse:
            parts.reverse()
        if digits:
            parts = parts[-int(digits) :]
        value = ".".join(parts)
        return urllib.parse.quote(value, safe="-._~") if letter.isupper() else value

    return _MACRO.sub(one, text)


def truncate_domain(name: str) -> str:
    """§4.8: an expanded domain over 253 characters loses left-hand labels until it fits."""
    name = name.rstrip(".")
    while len(name) > 253 and "." in name:
        name = name.split(".", 1)[1]
    return name
