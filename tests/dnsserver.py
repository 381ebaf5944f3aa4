"""A real DNS server for tests: Debian's nsd, authoritative for the zones a test writes.

    server = start_nsd(tmp_path, {"example.com": "@ MX 10 mx1\\nmx1 A 127.0.0.2\\n"})
    config: [dns] nameservers = [server.nameserver]      # "127.0.0.1:PORT"
    server.stop()

Each zone text is in zone-file syntax relative to its origin; SOA and NS records are added.
Reverse zones work the same way ("0.0.127.in-addr.arpa": "2 PTR mx1.example.com.").
Loopback only; nsd runs in the foreground as a child and is always stopped.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.query

from mbtest import need_tool


def _free_port(address: str) -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((address, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((address, port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port for the DNS server")


@dataclass
class DnsServer:
    proc: subprocess.Popen
    address: str
    port: int
    directory: Path

    @property
    def nameserver(self) -> str:
        return f"{self.address}:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        path = self.directory / "nsd.log"
        return path.read_text() if path.exists() else ""


def _zone_text(origin: str, body: str) -> str:
    return (f"$ORIGIN {origin}.\n$TTL 60\n"
            f"@ IN SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 60\n"
            f"@ IN NS ns.{origin}.\n{body}\n")


def start_nsd(directory: Path, zones: dict[str, str], address: str = "127.0.0.1") -> DnsServer:
    nsd = need_tool("nsd")
    directory = Path(directory) / "nsd"
    directory.mkdir(parents=True, exist_ok=True)
    port = _free_port(address)
    conf = [
        "server:",
        f"  ip-address: {address}@{port}",
        f"  port: {port}",
        '  username: ""',
        '  chroot: ""',
        f'  zonesdir: "{directory}"',
        f'  pidfile: "{directory}/nsd.pid"',
        '  database: ""',
        f'  xfrdfile: "{directory}/xfrd.state"',
        f'  zonelistfile: "{directory}/zone.list"',
        f'  logfile: "{directory}/nsd.log"',
        "  do-ip6: no",
        "  verbosity: 1",
        "remote-control:",
        "  control-enable: no",
    ]
    for origin, body in zones.items():
        origin = origin.rstrip(".")
        (directory / f"{origin}.zone").write_text(_zone_text(origin, body))
        conf += ["zone:", f"  name: {origin}", f"  zonefile: {origin}.zone"]
    (directory / "nsd.conf").write_text("\n".join(conf) + "\n")
    proc = subprocess.Popen([nsd, "-d", "-c", str(directory / "nsd.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    server = DnsServer(proc, address, port, directory)
    first = next(iter(zones)).rstrip(".") + "."
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nsd exited: {server.log()}")
        try:
            dns.query.udp(dns.message.make_query(first, "SOA"), address, port=port, timeout=0.5)
            return server
        except (dns.exception.Timeout, OSError):
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"nsd did not answer on {address}:{port}: {server.log()}")
