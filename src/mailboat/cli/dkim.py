"""`mailboat dkim keygen DOMAIN` and `mailboat dns-records DOMAIN` (SPEC "Command line").

keygen writes a private key readable by its owner only (created 0600 with O_EXCL, so an existing
key is never overwritten and never briefly world-readable) and prints the TXT record to publish.
dns-records prints, in zone-file syntax, every record a domain needs to receive and send with
this server: MX, SPF, DKIM (for each configured selector), DMARC, MTA-STS and TLS-RPT.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailboat.auth.dkim.sign import DkimKey, DkimKeyError, load_key
from mailboat.cli.errors import USAGE, CliError
from mailboat.cli.serve import add_config_option, config_from
from mailboat.config.names import domain_name, is_fqdn


def register(sub: argparse._SubParsersAction) -> None:
    dkim = sub.add_parser("dkim", help="DKIM signing keys")
    verbs = dkim.add_subparsers(dest="verb", metavar="VERB", required=True)
    p = verbs.add_parser("keygen", help="create a signing key and print its DNS record")
    p.add_argument("domain", metavar="DOMAIN")
    p.add_argument("--selector", default="mail", help="selector (s=), default: mail")
    p.add_argument("--type", choices=("rsa", "ed25519"), default="rsa",
                   help="rsa (2048 bits, understood everywhere; default) or ed25519 (RFC 8463)")
    p.add_argument("--bits", type=int, default=2048, help="RSA key size (default 2048)")
    p.add_argument("--out", metavar="FILE", help="key file (default {data_dir}/dkim/DOMAIN.SELECTOR.key)")
    add_config_option(p)
    p.set_defaults(func=run_keygen)
    records = sub.add_parser("dns-records", help="print the DNS records a domain needs (MX, SPF, DKIM, DMARC, MTA-STS)")
    records.add_argument("domain", metavar="DOMAIN")
    add_config_option(records)
    records.set_defaults(func=run_dns_records)


def _domain(text: str) -> str:
    """DOMAIN as DNS knows it (an internationalised name in its A-label form), or exit 2."""
    try:
        return domain_name(text.strip())
    except ValueError as exc:
        raise CliError(str(exc), USAGE) from None


def txt_record(name: str, value: str) -> str:
    """A zone-file TXT line; values over 255 bytes are split into several strings (RFC 1035 §3.3.14)."""
    chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
    return f"{name}. IN TXT " + " ".join(f'"{c}"' for c in chunks)


def run_keygen(args: argparse.Namespace) -> int:
    domain = _domain(args.domain)
    selector = args.selector.strip()
    if not selector or not all(p and p.replace("-", "").replace("_", "").isalnum() for p in selector.split(".")):
        raise CliError(f"--selector {args.selector!r}: use letters, digits and hyphens, e.g. mail or 2026a", USAGE)
    if args.type == "rsa" and not 1024 <= args.bits <= 8192:
        raise CliError(f"--bits {args.bits}: use 2048 (or 1024..8192; below 1024 is refused by receivers)", USAGE)
    if args.out:
        path = args.out
    else:
        path = os.path.join(config_from(args).data_dir, "dkim", f"{domain}.{selector}.key")
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    key = ed25519.Ed25519PrivateKey.generate() if args.type == "ed25519" else rsa.generate_private_key(65537, args.bits)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CliError(f"{path} already exists: keys are never overwritten; choose another --selector "
                       "or --out, or delete the old key after its DNS record is gone") from None
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    os.chmod(path, 0o600)  # O_CREAT's mode is filtered by the umask; make 0600 explicit
    print(txt_record(f"{selector}._domainkey.{domain}", DkimKey(domain, selector, key).dns_record()))
    print(f"key written to {path} (mode 0600). Publish the record above, then add to the configuration:\n"
          f'[[dkim.sign]]\ndomain = "{domain}"\nselector = "{selector}"\nkey = "{os.path.abspath(path)}"',
          file=sys.stderr)
    return 0


def run_dns_records(args: argparse.Namespace) -> int:
    domain = _domain(args.domain)
    config = config_from(args)
    host = config.hostname.rstrip(".")
    if not is_fqdn(host):
        print(f"mailboat: warning: hostname {host!r} is not a fully qualified domain name, but an MX must name "
              "one with an A/AAAA record: set hostname = \"mx.example.com\" (a name of yours) in the configuration",
              file=sys.stderr)
    postmaster = f"postmaster@{domain}"
    lines = [f"; DNS records for {domain} served by {host}"]
    if domain not in [d.lower() for d in config.local_domains]:
        lines.append(f"; note: {domain} is not in [domains].local, so this server does not accept its mail yet")
    lines += [f"{domain}. IN MX 10 {host}.", "; SPF (RFC 7208): only the hosts in the MX may send for the domain",
              txt_record(domain, "v=spf1 mx -all")]
    entries = [e for e in config.dkim.sign if e.domain.lower().rstrip(".") == domain]
    if not entries:
        lines.append(f"; DKIM: no [[dkim.sign]] key for {domain}: run 'mailboat dkim keygen {domain}'")
    for entry in entries:
        try:
            key = load_key(entry.domain, entry.selector, entry.key)
        except DkimKeyError as exc:
            lines.append(f"; DKIM selector {entry.selector}: {exc}")
            continue
        lines.append(txt_record(f"{entry.selector}._domainkey.{domain}", key.dns_record()))
    lines += ["; DMARC (RFC 9989): quarantine what fails; aggregate reports to the postmaster",
              txt_record(f"_dmarc.{domain}", f"v=DMARC1; p=quarantine; rua=mailto:{postmaster}")]
    policy = f"version: STSv1\nmode: testing\nmx: {host}\nmax_age: 604800\n"
    policy_id = hashlib.sha256(policy.encode()).hexdigest()[:16]
    lines += ["; MTA-STS (RFC 8461): serve the policy below at "
              f"https://mta-sts.{domain}/.well-known/mta-sts.txt, then publish:",
              *(f";   {line}" for line in policy.splitlines()),
              f"mta-sts.{domain}. IN CNAME {host}.",
              txt_record(f"_mta-sts.{domain}", f"v=STSv1; id={policy_id}"),
              "; TLS reporting (RFC 8460)",
              txt_record(f"_smtp._tls.{domain}", f"v=TLSRPTv1; rua=mailto:{postmaster}")]
    print("\n".join(lines))
    return 0
