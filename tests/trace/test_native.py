"""The native Received reader (``mailboat._native``, Rust in native/) reads every header exactly as
the pure-Python general path (``parse._general``) does: the same Hop, field for field and warning
for warning, with the timestamp in UTC; and it never panics.

Why: `parse_received` hands every ASCII str header to the native reader and trusts its answer, so
any difference between the two is a difference users see. A panic is caught at the boundary and
answered with None (the Python reader then takes the header), so a panic would only show as a
silent slow-down; the tests therefore require an answer for every ASCII value that has no CR or LF
outside a fold, and None for everything else (non-ASCII text, a bare CR or LF).
``MAILBOAT_NATIVE_PANICS=1`` makes the extension print a panic's message.

The native reader takes the value as `parse_received` gets it (it unfolds and drops a leading
``Received:`` itself) and returns its `Hop` (``raw`` is the unfolded text); parse.py has handed
it the Hop classes with ``configure``, so it builds the Hop as `hop.make_hop` does. Inputs: the
corpus (tests/data/received), the generator of test_fast_path_generated.py
(``MAILBOAT_TRACE_CASES`` sets the sweep, as there), dates built from their parts, hypothesis
mutations of those headers and random ASCII text.

Without the extension the module is skipped (``make native`` builds it); under ``CI=true`` that is
a failure, since CI must prove the reader it ships is built and tested.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailboat.trace import parse
from mailboat.trace.hop import Hop
from mailboat.trace.parse import parse_received

from mbtest import ON_CI

try:
    from mailboat._native import parse_received as native  # type: ignore[import-not-found]
except ImportError as exc:
    _WHY = f"the native Received reader mailboat._native is not built (make native): {exc}"
    if ON_CI:  # CI must test the native reader, not skip it
        pytest.fail(_WHY, pytrace=False)
    pytest.skip(_WHY, allow_module_level=True)

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data" / "received"
CASES = int(os.environ.get("MAILBOAT_TRACE_CASES", "6000"))
FIELDS = tuple(f.name for f in dataclasses.fields(Hop))
CORPUS = {p.stem: json.loads(p.read_text("utf-8"))["raw"] for p in sorted(DATA.glob("*.json"))}


def _load_generated() -> ModuleType:
    """test_fast_path_generated.py by its path (tests/trace is not on pytest's pythonpath)."""
    spec = importlib.util.spec_from_file_location("_native_generated_headers", HERE / "test_fast_path_generated.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generated_header: Callable[[random.Random], str] = _load_generated().generated_header


def declines(value: str) -> bool:
    """Whether the native reader must leave `value` to Python: not ASCII, or CR/LF outside a fold."""
    if not value.isascii():
        return True
    joined = value.replace("\r\n\t", "\t").replace("\r\n ", " ")
    return "\r" in joined or "\n" in joined


def native_hop(value: str) -> Hop | None:
    """The native reader's Hop of `value`, or None when it declined (or panicked)."""
    got = native(value)
    assert got is None or type(got) is Hop, f"native answer for {value!r}: {got!r}"
    return got


def differences(got: Hop, want: Hop) -> list[str]:
    """One line per field where `got` is not `want` (value or type), and a non-UTC timestamp."""
    out = [f"  {name}: native={getattr(got, name)!r} python={getattr(want, name)!r}"
           for name in FIELDS
           if type(getattr(got, name)) is not type(getattr(want, name)) or getattr(got, name) != getattr(want, name)]
    for label, h in (("native", got), ("python", want)):
        if type(h) is not Hop:
            out.append(f"  {label} type: {type(h)!r}")
        if h.timestamp is not None and h.timestamp.tzinfo is not UTC:
            out.append(f"  {label} timestamp tzinfo: {h.timestamp.tzinfo!r} (want UTC)")
    return out


def assert_native_same(value: str) -> None:
    """The native Hop of `value` is `parse._general(value)`; None exactly when it must decline."""
    got = native_hop(value)
    if declines(value):
        assert got is None, f"the native reader should leave {value!r} to Python, and read it as {got!r}"
        return
    assert got is not None, (f"the native reader gave None for ASCII text {value!r} (a panic? "
                             "MAILBOAT_NATIVE_PANICS=1 prints it)")
    diff = differences(got, parse._general(value))
    assert not diff, f"native and Python differ on {value!r}:\n" + "\n".join(diff)


def assert_both_forms(raw: str) -> None:
    """`raw` as folded, and as unfolded text (what the reader works on after its own unfolding)."""
    assert_native_same(raw)
    assert_native_same(parse._unfold(raw))


# 1. The corpus.

@pytest.mark.parametrize("name", list(CORPUS))
def test_corpus_native_equals_python(name: str) -> None:
    assert_both_forms(CORPUS[name])


# 2. Generated headers (the generator of test_fast_path_generated.py).

def test_generated_headers_native_equals_python() -> None:
    rng = random.Random(20260324)
    read = 0
    for _ in range(CASES):
        raw = generated_header(rng)
        assert_both_forms(raw)
        read += not declines(raw)
    assert read > CASES // 2  # the sweep exercises the native reader, not only its refusals


# 3. Dates built from their parts (through the hop: date_value gives the timestamp and warnings).

DATE_HEAD = "from a (a [192.0.2.1]) by b with ESMTP id X"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
ZONES = ("+0000", "-0000", "+1460", "+0060", "-1400", "+0100", "-0700", "GMT", "UT", "UTC", "EST", "PDT", "Z", "z",
         "CEST", "A", "+01:00", "", "IST", "BST", "JST", "AEST", "NZDT", "NST", "XYZ", "pm", "PM +0100")
ZONE_COMMENTS = ("", "", " (PDT)", " (UTC)", " (+0100)", " (CET)", " (PST)", "(GMT)", " ( CEST )")
SECONDS = (":00", ":59", ":60", ":61", "", ":58.123", ":5")
DATES = (
    "Wed, 27 Mar 2024 15:02:58 +0000", "31 Dec 9999 23:59:59 -1400", "1 Jan 0001 00:30:00 +0100",
    "Mon, 1 Jan 0001 00:30:00 +0100", "Sat, 31 Dec 2016 23:59:60 +0000", "Thu, 27 Mar 2024 15:02:58 +0000",
    "Wed, 27 Mar 24 10:02:58 EST", "Wed, 27 Mar 124 10:02:58 EST", "Wed, 27 Mar 99 10:02:58 PDT",
    "27 Mar 2024 15:02:58 +0100 (PST)", "Wed,  27   Mar 2024   08:02:58   PDT", "Wed, 27 Mar 2024 17:02 CEST",
    "2024-03-27 15:02:58.1 +0000 UTC", "2024-03-27T15:02:58Z", "2024-03-27 15:02:58.123456789 +0000 UTC m=+1.5",
    "Wed, 27 Mar 2024 15:02:58 +1460", "Wed, 27 Mar 2024 15:02:58 +0060", "Wed, 27 Mar 2024 15:02:61 +0000",
    "Wed, 31 Feb 2024 15:02:58 +0000", "Thu, 29 Feb 2024 15:02:58 +0000", "29 Feb 2023 15:02:58 +0000",
    "Wednesday, 27 Mar 2024 15:02:58 +0000", "wed, 27 mar 2024 15:02:58 gmt", "27-Mar-2024 15:02:58 +0000",
    "27 Mar. 2024 15:02:58 +0000", "Wed 27 Mar 2024 15:02:58 +0000", "27 Mar 2024 24:00:00 +0000", "yesterday", "",
    # forms seen in the wild against the rules
    "Aug, 25 2002 11:17:27 PM +1100", "Aug, 26 2002 12:19:37 AM +0600", "Aug, 26 2002 13:19:37 PM +0600",
    "Sep, 02 2002 2:35:51 pm -0000", "Mon, Aug 26 02 2:35 PM CEST", "Foo, 25 2002 11:17:27 PM +1100",
    "22/08/2002 10:25:57", "08/22/2002 10:25:57 +0200", "31/02/2002 10:25:57", "13/13/2002 10:25", "x 1/2/2002 1:02 AM",
    "Wed Aug 28 10:45:49 2002    +0100", "Fri Sep  6 18:13:52 2002 -0000", "Wed Aug 21 11:17:27 2002",
    "Thu Aug 21 11:17:27 2002 IST", "Wed Aug 21 11:17 2002 JST", "Wednesday Aug 21 11:17:27 2002",
    "23 Aug 0102 02:37:19 -0300", "Thu, 22 Aug 0102 23:36:23 -0300", "1 Jan 0099 00:00:00 +0000",
    "1 Jan 0999 00:00:00 +0000", "Tue, 08 Oct 2002 23:51:52 CEST", "Thu, 22 Aug 2002 12:36:16 IST",
    "Thu, 22 Aug 2002 12:36:16 +0100 (IST)", "Fri, 06 Sep 2002 11:24:17 bst", "06 Sep 2002 11:24:17 NDT",
)


def built_date(rng: random.Random) -> str:
    """A date from parts: the weekday right, wrong or missing; 1-2 digit days; 2-4 digit years;
    seconds 00/59/60/61 or none; numeric, named and military zones; comments; extra spaces."""
    year = rng.choice((rng.randint(1950, 2049), rng.randint(1, 9999), 1, 9999, 2000, 1999))
    month, day = rng.randint(1, 12), rng.choice((rng.randint(1, 28), 29, 30, 31, 1))
    try:
        weekday = date(year, month, day).weekday()
    except ValueError:  # 31 Feb: no weekday is right
        weekday = rng.randrange(7)
    sp = rng.choice((" ", " ", " ", "  ", "\t", " \t "))
    day_text = rng.choice((str(day), f"{day:02d}"))
    year_text = rng.choice((f"{year:04d}", f"{year % 100:02d}", f"{year - 1900:03d}" if 2000 <= year < 2900 else
                            str(year), str(year)))
    clock = f"{rng.randint(0, 24):02d}:{rng.choice((0, 2, 59, 60)):02d}{rng.choice(SECONDS)}"
    text = sp.join((day_text, rng.choice(MONTHS), year_text, clock))
    zone = rng.choice(ZONES)
    if zone:
        text += sp + zone
    text += rng.choice(ZONE_COMMENTS)
    which = rng.random()
    if which < 0.4:
        text = f"{WEEKDAYS[weekday]},{sp}{text}"
    elif which < 0.7:
        text = f"{WEEKDAYS[(weekday + rng.randint(1, 6)) % 7]},{sp}{text}"
    elif which < 0.75:
        text = f"{WEEKDAYS[weekday].lower()} ,{text}"
    return text + rng.choice(("", "", " ", "  "))


@pytest.mark.parametrize("when", DATES)
def test_dates_native_equals_python(when: str) -> None:
    assert_native_same(f"{DATE_HEAD}; {when}")
    assert_native_same(f"{DATE_HEAD} {when}")  # no ';': the date is found in the tail


# Without a ';' the date is the last match of parse._DATE_START in the text, and its \b looks at the
# character before each match, including one that ends the previous match: two dates back to back.
TAIL_DATES = (
    "1 Mar 24 1:02Wed, 2 Mar 24 1:02", "1 Mar 24 1:02Mon,2 Mar 24 1:02", "by b 1 Mar 2024 15:02Wed, 2 Mar 2024 15:02",
    "2024-03-27 15:02Wed, 2 Mar 2024 15:02", "1 Mar 24 1:02 Wed, 2 Mar 24 1:02", "1 Mar 24 1:0212 Mar 24 1:02",
    "1 Mar 24 1:022024-03-27 15:02", "xWed, 27 Mar 2024 15:02", "Wed, x27 Mar 2024 15:02", "_Wed, 1 Mar 2024 15:02",
)


@pytest.mark.parametrize("text", TAIL_DATES)
def test_dates_in_the_tail_native_equals_python(text: str) -> None:
    assert_native_same(text)
    assert_native_same(f"{DATE_HEAD} {text}")


def test_built_dates_native_equals_python() -> None:
    rng = random.Random(20260401)
    for _ in range(CASES):
        when = built_date(rng)
        assert_native_same(f"{DATE_HEAD}; {when}")
        if rng.random() < 0.25:
            assert_native_same(f"{DATE_HEAD} {when}")
        if rng.random() < 0.1:  # two dates in the tail, back to back or apart
            assert_native_same(f"{DATE_HEAD} {when}{rng.choice(('', ' ', 'x', ',', '('))}{built_date(rng)}")


# 4. Hypothesis: mutations of corpus and generated headers, and random text.

SYNTAX = st.sampled_from([
    *"()[]<>\";\\:@=,. \t0123456789azAZ", "from", "by", "with", "id", "for", "via", "tls", "From ", " BY ", "IPv6:",
    "helo=", "port=", "(HELO x)", "(may be forged)", "(Exim 4.96)", "ESMTPS", "esmtpsa", "LMTP", "HTTPS",
    "(using TLSv1.3 with cipher X)", "(TLS)", "cipher=", "[192.0.2.1]", "[IPv6:2001:db8::1]", "unknown", "<unknown>",
    "Wed, 27 Mar 2024 15:02:58 +0000", "31 Dec 9999 23:59:59 -1400", "1 Jan 0001 00:30:00 +0100", "23:59:60",
    "(PST)", "CEST", "2024-03-27 15:02:58.1 +0000 UTC", "Thu,", "99", "124", "-0000", "+1460", "; ",
    "\r\n\t", "\r\n ", "\r\n", "\r", "\n", "\x00", "\x0b", "\x0c", "\x1c", "\x1f", "\x7f", "Received:",
    " - ", " - 192.0.2.1", "user@host.example", "a@b@", " with login", " WITH plain", "(qmail 1 invoked from network)",
    "invoked from network[192.0.2.1/host.example]", "network[2001:db8::1/unknown]", "network[", "/unknown]",
    "Aug, 25 2002 11:17:27 PM +1100", "22/08/2002 10:25:57", "Wed Aug 21 11:17:27 2002", "0102", " PM", " AM",
    "IST", "JST", "BST", "(Postfix)", "from ()", "by (", "with id",
])
_rng = random.Random(7)
BASES = sorted({*(raw for raw in CORPUS.values() if raw.isascii()),
                *(h for h in (generated_header(_rng) for _ in range(300)) if h.isascii()),
                *(f"{DATE_HEAD}; {built_date(_rng)}" for _ in range(100)),
                *(f"{DATE_HEAD} {built_date(_rng)}" for _ in range(50))})


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A corpus or generated header with a few characters or fragments inserted, deleted or replaced."""
    text = draw(st.sampled_from(BASES))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(("insert", "delete", "replace")))
        at = draw(st.integers(0, len(text)))
        if op == "insert":
            text = text[:at] + draw(SYNTAX) + text[at:]
        else:
            end = at + draw(st.integers(1, 12))
            text = text[:at] + (draw(SYNTAX) if op == "replace" else "") + text[end:]
    return text


ASCII = st.text(alphabet=st.characters(max_codepoint=127), max_size=300)
FRAGMENTS = st.lists(SYNTAX, max_size=40).map("".join)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_headers_native_equals_python(value: str) -> None:
    assert_native_same(value)


@settings(max_examples=2000, deadline=None)
@given(st.one_of(ASCII, FRAGMENTS, st.builds("from {} by {}; {}".format, FRAGMENTS, ASCII, FRAGMENTS)))
def test_random_ascii_native_equals_python(value: str) -> None:
    assert_native_same(value)


# Never panics; declines exactly what it must.

@settings(max_examples=300, deadline=None)
@given(ASCII)
def test_native_answers_all_unfolded_ascii(value: str) -> None:
    text = parse._unfold(value)  # the text as parse_received hands it over: no CR or LF left
    assert native(text) is not None, f"no answer for {text!r} (a panic? MAILBOAT_NATIVE_PANICS=1 prints it)"


@pytest.mark.parametrize("value", [
    "from mail.bücher.example by x; Wed, 27 Mar 2024 15:02:58 +0000",
    "from a by b; Wed, 27 Mar 2024 15:02:58 +0000 é",
    "from a\u00a0by b; Wed, 27 Mar 2024 15:02:58 +0000",
    "from a by b\nwith ESMTP; Wed, 27 Mar 2024 15:02:58 +0000",
    "from a by b\r\nwith ESMTP; Wed, 27 Mar 2024 15:02:58 +0000",
    "from a\r by b; Wed, 27 Mar 2024 15:02:58 +0000",
    "from a\udcff by b; Wed, 27 Mar 2024 15:02:58 +0000",  # undecodable bytes kept by surrogateescape
    "\udcff",
])
def test_native_declines_non_ascii_and_bare_line_breaks(value: str) -> None:
    assert native(value) is None
    diff = differences(parse_received(value), parse._general(value))  # the Python reader takes it
    assert not diff, "\n".join(diff)


# 5. The Python-side glue: what users see.

@pytest.mark.parametrize("name", list(CORPUS))
def test_parse_received_is_the_python_reading(name: str) -> None:
    raw = CORPUS[name]
    diff = differences(parse_received(raw), parse._general(parse._unfold(raw)))
    assert not diff, f"parse_received differs on {raw!r}:\n" + "\n".join(diff)


@settings(max_examples=300, deadline=None)
@given(st.one_of(mutated(), st.text(max_size=200)))
def test_parse_received_is_the_python_reading_on_any_text(value: str) -> None:
    diff = differences(parse_received(value), parse._general(value))
    assert not diff, f"parse_received differs on {value!r}:\n" + "\n".join(diff)


def _native_flag(env: dict[str, str]) -> str:
    code = "import mailboat.trace.parse as p; print(p.NATIVE)"
    done = subprocess.run([sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_environment_switch() -> None:
    assert parse.NATIVE is (os.environ.get("MAILBOAT_NATIVE") != "0")
    if parse.NATIVE:
        assert parse._native is native
    env = {k: v for k, v in os.environ.items() if k != "MAILBOAT_NATIVE"}
    assert _native_flag({**env, "MAILBOAT_NATIVE": "0"}) == "False"
    assert _native_flag(env) == "True"
