"""ContentCheck against a line-by-line reference: same verdict for any content, cut anywhere.

ContentCheck works on whole pieces with bytes methods and carries state across piece
boundaries (a pending CR, the length of the unfinished line). The reference here joins the
pieces and walks the lines one by one, which is slow but obviously right.
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from mailboat.smtp import replies
from mailboat.smtp.data import MAX_TEXT_LINE, ContentCheck
from mailboat.smtp.reply import Reply


def reference(content: bytes, max_size: int, finished: bool) -> Reply | None:
    """The reply for the most important problem of ``content``, checked line by line.

    Before the end (``finished`` false) a final CR is not yet a bare CR: an LF may follow.
    """
    lines = content.split(b"\n")  # every line but the last ended with LF
    bare = False
    for line in lines[:-1]:
        # ended with LF: it must be CRLF, and no other CR in the line
        if not line.endswith(b"\r") or b"\r" in line[:-1]:
            bare = True
    last = lines[-1]
    if b"\r" in (last if finished else last[:-1]):
        bare = True
    # octets before the LF (CR included), or so far for the last line
    too_long = any(len(line) > MAX_TEXT_LINE - 1 for line in lines)
    problems = [
        (bare, replies.BARE_LINE_ENDING),
        (b"\x00" in content, replies.NUL_IN_DATA),
        (too_long, replies.DATA_LINE_TOO_LONG),
        (max_size > 0 and len(content) > max_size, replies.MESSAGE_TOO_BIG),
    ]
    return next((reply for found, reply in problems if found), None)


def verdict(check: ContentCheck) -> Reply | None:
    error = check.error
    return None if error is None else error[0]


# The octets that matter (CR, LF, NUL, "." and another), plus lines near the length limit and
# runs of short lines (ContentCheck counts instead of replacing where lines are short).
LONG_RUN = st.integers(MAX_TEXT_LINE - 10, MAX_TEXT_LINE + 10).map(lambda n: b"x" * n)
SHORT_LINES = b"ab\r\n" * 8
ANY_ATOM = st.one_of(
    st.sampled_from([b"a", b"\r", b"\n", b".", b"\x00", b"\r\n", SHORT_LINES]), LONG_RUN
)
# Only CRLF line endings, so that NUL, line length and size are not hidden behind a bare CR/LF.
CLEAN_ATOM = st.one_of(
    st.sampled_from([b"a", b".", b"\r\n", b"\r\n", b"\x00", SHORT_LINES]), LONG_RUN
)
contents = st.one_of(
    st.lists(ANY_ATOM, max_size=40), st.lists(CLEAN_ATOM, max_size=40)
).map(b"".join)
# Unlimited, or a limit that messages of a few long lines cross.
max_sizes = st.sampled_from([0, 0, 1, 2000, 5000])


def cut(content: bytes, points: list[int]) -> list[bytes]:
    """Pieces of ``content`` cut at ``points``; empty pieces are kept (feed accepts them)."""
    bounds = [0, *sorted(p % (len(content) + 1) for p in points), len(content)]
    return [content[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=1000, deadline=None)
@given(
    content=contents,
    points=st.lists(st.integers(min_value=0), max_size=12),
    max_size=max_sizes,
)
def test_content_check_matches_line_by_line_reference(
    content: bytes, points: list[int], max_size: int
) -> None:
    check = ContentCheck(max_size)
    fed = b""
    for piece in cut(content, points):
        keep = check.feed(piece)
        fed += piece
        expected = reference(fed, max_size, finished=False)
        assert verdict(check) == expected
        assert keep == (expected is None)
    check.finish()
    assert verdict(check) == reference(content, max_size, finished=True)


@settings(max_examples=200, deadline=None)
@given(content=contents)
def test_content_check_byte_by_byte(content: bytes) -> None:
    check = ContentCheck(0)
    for i in range(len(content)):
        check.feed(content[i : i + 1])
    check.finish()
    assert verdict(check) == reference(content, 0, finished=True)


# Exact boundaries, whole and in two pieces at every cut: CR/LF straddling the cut, a line of
# exactly MAX_TEXT_LINE - 1 octets before the LF (allowed) or MAX_TEXT_LINE (too long).
EDGES = [
    b"",
    b"\r",
    b"\n",
    b"\r\n",
    b"\n\r",
    b"a\r\rb\r\n",
    b"a\r\n\n",
    b"\r\r\n",
    b"x" * (MAX_TEXT_LINE - 2) + b"\r\n",
    b"x" * (MAX_TEXT_LINE - 1) + b"\r\n",
    b"ab\r\n" + b"x" * (MAX_TEXT_LINE - 1),
    b"ab\r\n" + b"x" * MAX_TEXT_LINE,
    (b"x" * (MAX_TEXT_LINE - 2) + b"\r\n") * 3 + b"x" * 997 + b"\r\r\n",
    (b"ab\r\n" * 300 + b"x" * 990 + b"\r\n") * 3,
    b"a\r\n" * 200 + b"\n",  # short lines: the counting path
    b"a" * 300 + b"\r\n" * 200 + b"\r",  # long start, short lines after: counting after the probe
]


def test_content_check_edges() -> None:
    for content in EDGES:
        expected = reference(content, 0, finished=True)
        for i in range(len(content) + 1):
            check = ContentCheck(0)
            check.feed(content[:i])
            check.feed(content[i:])
            check.finish()
            assert verdict(check) == expected, (content, i)
