"""The retry schedule (SPEC [queue]: 1m 5m 15m 30m 1h 2h 4h, then every 4h; 5 days)."""

import pytest

from mailboat.queue.retry import DEFAULT_MAX_LIFETIME, DEFAULT_SCHEDULE, next_attempt, parse_duration

T0 = 1_000_000.0


def test_default_schedule_then_every_last_step():
    now, delays = T0, []
    for attempts in range(1, 11):
        nxt = next_attempt(attempts, T0, now, list(DEFAULT_SCHEDULE), DEFAULT_MAX_LIFETIME)
        delays.append(nxt - now)
        now = nxt
    assert delays == [60, 300, 900, 1800, 3600, 7200, 14400, 14400, 14400, 14400]


def test_gives_up_at_max_lifetime_after_a_final_attempt_at_expiry():
    life = 5 * 86400
    # 4h before expiry minus a minute: the next try is pulled in to the expiry time itself
    now = T0 + life - 60
    assert next_attempt(30, T0, now, [60, 14400], life) == T0 + life
    assert next_attempt(31, T0, T0 + life, [60, 14400], life) is None
    assert next_attempt(1, T0, T0 + life + 1, [60], life) is None


def test_never_attempted_is_due_now_and_empty_schedule_refused():
    assert next_attempt(0, T0, T0 + 5, [60], 100) == T0 + 5
    with pytest.raises(ValueError):
        next_attempt(1, T0, T0, [], 100)


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("5m", 300), ("1.5h", 5400), ("5d", 432000),
                                          ("2w", 1209600), ("42", 42), (" 4h ", 14400)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "5x", "-5m", "5 m s"])
def test_parse_duration_refuses(text):
    with pytest.raises(ValueError):
        parse_duration(text)
