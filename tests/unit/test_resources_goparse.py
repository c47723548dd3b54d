"""Numbers, booleans and durations read as Knative (Go) reads them: what Go's
`strconv` and `time.ParseDuration` take is taken, what they refuse is refused."""

from __future__ import annotations

import pytest

from amimesh.resources import goparse

S = goparse.SECOND


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("6s", 6 * S),
        ("60s", 60 * S),
        ("1m30s", 90 * S),
        ("1.5h", 5400 * S),
        ("-1.5h", -5400 * S),
        ("-2m", -120 * S),
        ("+1ms", 1_000_000),
        ("300ms", 300_000_000),
        ("1.s", S),
        ("5.s", 5 * S),
        (".5s", 500_000_000),
        ("250us", 250_000),
        ("250µs", 250_000),
        ("1µs", 1000),
        ("2h45m", 9900 * S),
        ("1h2m3s4ms", 3_723_004_000_000),
    ],
)
def test_go_durations(text: str, ns: int) -> None:
    assert goparse.parse_duration(text) == ns


@pytest.mark.parametrize(
    "text", ["", "5", "6", "s", ".s", "1x", "1d", "1 s", " 5s", "5s ", "1.5.s", "+", "."]
)
def test_go_durations_refused(text: str) -> None:
    with pytest.raises(ValueError):
        goparse.parse_duration(text)


def test_go_numbers_and_bools() -> None:
    assert goparse.parse_float("1e3") == 1000.0
    assert goparse.parse_float("-.5") == -0.5
    for bad in (" 1", "1_0", "0x10", "1e400", "", "1,5"):
        with pytest.raises(ValueError):
            goparse.parse_float(bad)
    assert goparse.parse_int("+7", 32) == 7
    for bad in ("2147483648", "1.0", " 1", "1_0"):
        with pytest.raises(ValueError):
            goparse.parse_int(bad, 32)
    assert [goparse.parse_bool(t) for t in ("1", "t", "TRUE", "False")] == [True, True, True, False]
    with pytest.raises(ValueError):
        goparse.parse_bool("yes")


def test_out_of_range_is_told_apart() -> None:
    # Knative's min-scale and max-scale answer "out of bounds" for these, not "invalid".
    with pytest.raises(goparse.RangeError):
        goparse.parse_int("2147483648", 32)
    with pytest.raises(goparse.RangeError):
        goparse.parse_float("1e400")
    with pytest.raises(ValueError) as caught:
        goparse.parse_int("two", 32)
    assert not isinstance(caught.value, goparse.RangeError)
