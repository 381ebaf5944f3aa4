"""Renderings of a Trace: the JSON contract, a rich table, and a self-contained HTML report.

JSON follows SPEC ``mailboat trace --json`` exactly: ``hops[index, from_helo, from_rdns,
from_ip, by_host, with_protocol, tls, id, for, via, timestamp, delay_seconds, raw, warnings]``,
``total_seconds`` and ``findings[kind, hop, message]``; timestamps are UTC ``YYYY-MM-DDTHH:MM:SSZ``
(RFC 3339 §5.6). The HTML report has no external assets: CSS inline and the timeline drawn as an
inline SVG with one ``<g class="hop">`` per hop, so it can be mailed or archived as one file.
"""

from __future__ import annotations

import html
import json
import math
import re
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mailboat.trace.parse import Hop
from mailboat.trace.timeline import LONG_DELAY_SECONDS, Trace, duration, host_name

_KIND_STYLE = {"long_delay": "yellow", "clock_skew": "magenta", "no_tls": "red", "unparsable": "red"}


# Lone surrogates: what bytes that are not UTF-8 become when a header is decoded with
# surrogateescape (mail/headers.py keeps them so that nothing is lost while reading).
_SURROGATES = re.compile("[\ud800-\udfff]")


def clean(text: str) -> str:
    """`text` made encodable as UTF-8: every lone surrogate becomes U+FFFD (the replacement character)."""
    return text if text.isascii() else _SURROGATES.sub("\ufffd", text)


def clean_json(value: Any) -> Any:
    """A JSON value (dicts, lists, strings, numbers) with every string, keys included, `clean`ed."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean(k) if isinstance(k, str) else k: clean_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_json(v) for v in value]
    return value


def json_bytes(value: Any) -> bytes:
    """The JSON text of `value`, indented, as UTF-8 bytes that always decode (SPEC: "the output is
    always valid UTF-8: bytes that are not are replaced")."""
    return (json.dumps(clean_json(value), indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def iso(ts: datetime | None) -> str | None:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ") if ts else None


def hop_fields(hop: Hop) -> dict[str, Any]:
    """Every parsed field of one hop as JSON values (the golden corpus compares these)."""
    return {
        "from_helo": hop.from_helo,
        "from_rdns": hop.from_rdns,
        "from_ip": hop.from_ip,
        "by_host": hop.by_host,
        "with_protocol": hop.with_protocol,
        "tls": hop.tls,
        "tls_evidence": hop.tls_evidence,
        "id": hop.id,
        "for": hop.for_,
        "via": hop.via,
        "timestamp": iso(hop.timestamp),
        "warnings": list(hop.warnings),
        "extras": [list(pair) for pair in hop.extras],
    }


def to_json(trace: Trace) -> dict[str, Any]:
    """The SPEC JSON object (ready for json.dumps; every string valid UTF-8)."""
    return clean_json({
        "hops": [
            {
                "index": t.index,
                "from_helo": t.hop.from_helo,
                "from_rdns": t.hop.from_rdns,
                "from_ip": t.hop.from_ip,
                "by_host": t.hop.by_host,
                "with_protocol": t.hop.with_protocol,
                "tls": t.hop.tls,
                "id": t.hop.id,
                "for": t.hop.for_,
                "via": t.hop.via,
                "timestamp": iso(t.hop.timestamp),
                "delay_seconds": t.delay_seconds,
                "raw": t.hop.raw,
                "warnings": list(t.hop.warnings),
            }
            for t in trace.hops
        ],
        "total_seconds": trace.total_seconds,
        "findings": [{"kind": f.kind, "hop": f.hop, "message": f.message} for f in trace.findings],
    })


def total_text(trace: Trace) -> str:
    """The total transit time and what it spans, as the text and HTML reports say it:
    "9 min 51 s (from the Date header to hop 10)", "2 s (from hop 1 to hop 3)", "unknown"."""
    if trace.total_seconds is None:
        return "unknown"
    sign = "-" if trace.total_seconds < 0 else ""
    stamped = [t.index for t in trace.hops if t.hop.timestamp is not None]
    last = stamped[-1] if stamped else len(trace.hops)
    start = "the Date header" if trace.total_from == "date" else f"hop {stamped[0] if stamped else 1}"
    return f"{sign}{duration(trace.total_seconds)} (from {start} to hop {last})"


def _from_cell(t: Any) -> str:
    hop = t.hop
    parts = [hop.from_helo if hop.from_helo and hop.from_helo != f"[{hop.from_ip}]" else ""]
    if hop.from_rdns and hop.from_rdns != hop.from_helo:
        parts.append(f"({hop.from_rdns})")
    if hop.from_ip:
        parts.append(f"[{hop.from_ip}]")
    return " ".join(p for p in parts if p) or "-"


def _delay_text(seconds: float | None) -> Text:
    if seconds is None:
        return Text("?", style="dim")
    label = ("-" if seconds < 0 else "+") + duration(seconds)
    style = "bold red" if seconds >= LONG_DELAY_SECONDS else "magenta" if seconds < 0 else ""
    return Text(label, style=style)


def render_text(trace: Trace, console: Console) -> None:
    """The table a person reads at a glance, then the total and the findings."""
    table = Table(title="Received chain (hop 1 = first server)", title_justify="left", expand=False)
    columns: tuple[tuple[str, dict[str, Any]], ...] = (
        ("#", {"justify": "right"}), ("from", {}), ("by", {}), ("with", {}), ("TLS", {}), ("time (UTC)", {}),
        ("delay", {"justify": "right"}))
    for name, kw in columns:
        table.add_column(name, overflow="fold", **kw)
    for t in trace.hops:
        hop = t.hop
        tls = Text("yes", "green") if hop.tls else Text("no", "red") if hop.tls is False else Text("?", "dim")
        when = hop.timestamp.strftime("%Y-%m-%d %H:%M:%S") if hop.timestamp else Text("unreadable", "red")
        warn = " ⚠" if hop.warnings else ""
        table.add_row(str(t.index) + warn, clean(_from_cell(t)), clean(hop.by_host or "-"),
                      clean(hop.with_protocol or "-"), tls, when, _delay_text(t.delay_seconds))
    console.print(table)
    line = f"Total transit: {total_text(trace)}"
    if trace.slowest_hop is not None:
        slow = trace.hops[trace.slowest_hop - 1]
        lost = duration(slow.delay_seconds or 0)
        line += f"; most time lost before hop {slow.index} ({lost} in the queue of {clean(trace.slowest_queue or '?')})"
    console.print(line)
    if not trace.findings:
        console.print("No findings.")
    for f in trace.findings:
        where = f"hop {f.hop}" if f.hop else "message"
        console.print(Text.assemble((f"{f.kind}", _KIND_STYLE.get(f.kind, "cyan")), f" ({where}): {clean(f.message)}"))
    warned = [t for t in trace.hops if t.hop.warnings]
    for t in warned:
        console.print(Text(clean(f"hop {t.index} warnings: " + "; ".join(t.hop.warnings)), style="dim"))


def _escape(text: str) -> str:
    return html.escape(clean(text))


_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;width:100%}
td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top;text-align:left}th{background:#f3f3f3}
.bad{color:#b00}.warn{color:#a60}.ok{color:#080}.raw{font:12px monospace;color:#555;word-break:break-all}
svg text{font:12px sans-serif}li{margin:.3em 0}"""


def render_html(trace: Trace, title: str = "Received chain") -> str:
    """A self-contained HTML page: timeline picture, hop table, findings."""
    e = _escape
    rows = []
    for t in trace.hops:
        hop = t.hop
        tls = "yes" if hop.tls else "no" if hop.tls is False else "?"
        cls = "ok" if hop.tls else "bad" if hop.tls is False else ""
        delay = "?" if t.delay_seconds is None else ("-" if t.delay_seconds < 0 else "+") + duration(t.delay_seconds)
        rows.append(
            f'<tr id="hop-{t.index}"><td>{t.index}</td><td>{e(_from_cell(t))}</td><td>{e(hop.by_host or "-")}</td>'
            f'<td>{e(hop.with_protocol or "-")}</td><td class="{cls}">{tls}</td>'
            f"<td>{e(iso(hop.timestamp) or 'unreadable')}</td><td>{e(delay)}</td>"
            f'<td>{e("; ".join(hop.warnings))}<div class="raw">{e(hop.raw)}</div></td></tr>'
        )
    findings = "".join(f"<li><b>{e(f.kind)}</b> ({'hop ' + str(f.hop) if f.hop else 'message'}): {e(f.message)}</li>"
                       for f in trace.findings) or "<li>No findings.</li>"
    total = total_text(trace)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
        f"<style>{_CSS}</style></head><body><h1>{e(title)}</h1><p>{len(trace.hops)} hops, total transit {e(total)}.</p>"
        f'<h2>Timeline</h2>{_svg(trace)}<h2>Hops</h2><table id="hops"><tr><th>#</th><th>from</th><th>by</th>'
        f"<th>with</th><th>TLS</th><th>time (UTC)</th><th>delay</th><th>warnings / raw</th></tr>{''.join(rows)}"
        f'</table><h2>Findings</h2><ul id="findings">{findings}</ul></body></html>\n'
    )


def _svg(trace: Trace) -> str:
    """Hops as stations on a line; segment length grows with the delay (log scale) so a long wait shows."""
    e = _escape
    n = len(trace.hops)
    if n == 0:
        return "<p>No Received headers.</p>"
    gaps = []
    for t in trace.hops[1:]:
        d = t.delay_seconds
        gaps.append(130 if d is None or d <= 0 else 130 + min(260, int(40 * max(0.0, _log10(d)))))
    width = 80 + sum(gaps) + 160
    parts = [f'<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="200" '
             f'viewBox="0 0 {width} 200" role="img" aria-label="timeline of {n} hops">']
    x = 80
    xs = []
    for i in range(len(trace.hops)):
        if i:
            x += gaps[i - 1]
        xs.append(x)
    for i, t in enumerate(trace.hops[1:], 1):
        d = t.delay_seconds
        color = "#999" if d is None else "#b00" if d >= LONG_DELAY_SECONDS else "#a0a" if d < 0 else "#080"
        label = "?" if d is None else ("-" if d < 0 else "+") + duration(d)
        dash = ' stroke-dasharray="5,4"' if d is None or d < 0 else ""
        parts.append(f'<line x1="{xs[i - 1]}" y1="80" x2="{xs[i]}" y2="80" stroke="{color}" stroke-width="4"{dash}/>'
                     f'<text x="{(xs[i - 1] + xs[i]) // 2}" y="70" text-anchor="middle" fill="{color}">'
                     f"{e(label)}</text>")
    for x, t in zip(xs, trace.hops, strict=True):
        hop = t.hop
        y = 112 if t.index % 2 else 150  # alternate rows so neighbouring names never overlap
        fill = "#2a7" if hop.tls else "#c33" if hop.tls is False else "#888"
        name = hop.by_host or "?"
        short = name if len(name) <= 24 else name[:22] + "…"
        when = hop.timestamp.strftime("%H:%M:%S") if hop.timestamp else "no date"
        parts.append(f'<g class="hop" data-index="{t.index}"><title>{e(name)} — {e(iso(hop.timestamp) or "no date")}'
                     f'</title><circle cx="{x}" cy="80" r="11" fill="{fill}"/><text x="{x}" y="84" '
                     f'text-anchor="middle" fill="#fff">{t.index}</text><text x="{x}" y="{y}" text-anchor="middle">'
                     f'{e(short)}</text><text x="{x}" y="{y + 16}" text-anchor="middle" fill="#666">'
                     f"{e(when)}</text></g>")
    parts.append("</svg>")
    return "".join(parts)


def _log10(x: float) -> float:
    return math.log10(x) if x > 0 else 0.0


def summary_line(trace: Trace) -> str:
    """One line per message for logs: hops, total, findings."""
    total = duration(trace.total_seconds) if trace.total_seconds is not None else "?"
    kinds = ",".join(sorted({f.kind for f in trace.findings})) or "none"
    first = host_name(trace.hops[0].hop) if trace.hops else "-"
    return f"{len(trace.hops)} hops from {first}, {total}, findings: {kinds}"
