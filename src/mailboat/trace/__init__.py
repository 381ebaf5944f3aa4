"""Received-header trace analyser: parse each hop, order the journey, explain what went wrong.

Pure code (no I/O): `parse.parse_received` reads one header, `timeline.analyse_message` reads a
whole message, `render` turns the result into text, the SPEC JSON, or an HTML report.
"""

from mailboat.trace.parse import Hop, parse_received
from mailboat.trace.timeline import Finding, TimedHop, Trace, analyse_message, build_trace

__all__ = ["Finding", "Hop", "TimedHop", "Trace", "analyse_message", "build_trace", "parse_received"]
