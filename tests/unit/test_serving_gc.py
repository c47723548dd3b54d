"""Knative's revision garbage collection: the settings as `config-gc` gives them and the
collector's choices, re-expressed from knative/serving's `pkg/gc/config_test.go` and
`pkg/reconciler/gc/gc_test.go` (one configuration's revisions, minutes ago)."""

from __future__ import annotations

import pytest

from amimesh.resources import knative_gc
from amimesh.resources.knative_gc import DISABLED, GcConfig
from amimesh.serving.gc import Candidate, collect

NOW = 100_000.0
MIN = 60.0
OLD, OLDER, OLDEST = NOW - 11 * MIN, NOW - 12 * MIN, NOW - 13 * MIN
LONG_AGO = 0.0  # a revision whose creation time the test leaves unset


def idle(name: str, since: float, created: float = LONG_AGO) -> Candidate:
    return Candidate(name, created, since, active=False)


def active(name: str, since: float = LONG_AGO) -> Candidate:
    return Candidate(name, LONG_AGO, since, active=True)


MIN_CASES = GcConfig(5 * MIN, 5 * MIN, 1, DISABLED)


@pytest.mark.parametrize(
    ("revisions", "deleted"),
    [
        pytest.param([active("5556")], [], id="too few revisions"),
        pytest.param(
            [idle("5554", OLDEST), idle("5555", OLDER), active("5556", OLD)],
            ["5554"],
            id="delete oldest, keep one recent, one active",
        ),
        pytest.param(
            # Never routed yet (pending, unset): not eligible.
            [active("5554"), active("5555"), active("5556")],
            [],
            id="keep oldest when none reserved",
        ),
        pytest.param(
            [idle("5554", NOW), idle("5555", NOW), idle("5556", NOW)], [], id="none stale"
        ),
        pytest.param(
            [active("5554", OLDEST), idle("5555", OLDER), idle("5556", OLD)],
            ["5555"],
            id="keep oldest because of the preserve annotation",
        ),
    ],
)
def test_collect_keeps_the_minimum(revisions: list[Candidate], deleted: list[str]) -> None:
    assert collect(revisions, MIN_CASES, NOW) == deleted


MAX_CASES = GcConfig(3600.0, 3600.0, 1, 2)


@pytest.mark.parametrize(
    ("revisions", "deleted"),
    [
        pytest.param(
            [idle("5554", OLDER), idle("5555", OLDER), active("5556", OLD)], [], id="at max"
        ),
        pytest.param(
            [idle("5553", OLDEST), idle("5554", OLDER), idle("5555", OLDER), active("5556", OLD)],
            ["5553"],
            id="delete oldest, keep three max",
        ),
        pytest.param(
            [active("5553"), active("5554"), active("5555"), active("5556")],
            [],
            id="over max, all active",
        ),
    ],
)
def test_collect_keeps_at_most_the_maximum(revisions: list[Candidate], deleted: list[str]) -> None:
    assert collect(revisions, MAX_CASES, NOW) == deleted


SETTINGS_REVISIONS = [idle("5554", OLDEST), idle("5555", OLDER), active("5556", OLD)]


@pytest.mark.parametrize(
    ("config", "deleted"),
    [
        pytest.param(GcConfig(DISABLED, DISABLED, 1, DISABLED), [], id="all disabled"),
        pytest.param(GcConfig(DISABLED, DISABLED, 0, 1), ["5554"], id="staleness disabled"),
        pytest.param(GcConfig(DISABLED, MIN, 1, DISABLED), ["5554"], id="max disabled"),
    ],
)
def test_collect_follows_the_settings(config: GcConfig, deleted: list[str]) -> None:
    assert collect(SETTINGS_REVISIONS, config, NOW) == deleted


def test_a_recent_creation_keeps_a_revision_nothing_routes() -> None:
    fresh = idle("5555", OLD, created=NOW - MIN)
    assert collect([idle("5554", OLDEST), fresh], GcConfig(5 * MIN, 5 * MIN, 0, 100), NOW) == [
        "5554"
    ]


def test_the_settings_read_as_knative_reads_them() -> None:
    assert knative_gc.parse({}) == GcConfig(48 * 3600.0, 15 * 3600.0, 20, 1000)
    assert knative_gc.parse(
        {
            "retain-since-create-time": "17h",
            "retain-since-last-active-time": "1m30s",
            "min-non-active-revisions": "5",
            "max-non-active-revisions": "disabled",
        }
    ) == GcConfig(17 * 3600.0, 90.0, 5, DISABLED)
    off = knative_gc.parse(
        {
            "retain-since-create-time": "disabled",
            "retain-since-last-active-time": "Disabled",
            "max-non-active-revisions": "DISABLED",
        }
    )
    assert off.off


@pytest.mark.parametrize(
    ("data", "key", "message"),
    [
        ({"retain-since-create-time": "forever"}, "retain-since-create-time", "invalid duration"),
        ({"retain-since-last-active-time": "-1h"}, "retain-since-last-active-time", "non-neg"),
        ({"min-non-active-revisions": "-1"}, "min-non-active-revisions", "non-negative"),
        ({"min-non-active-revisions": "x"}, "min-non-active-revisions", "integer"),
        ({"max-non-active-revisions": "-5"}, "max-non-active-revisions", "integer"),
        (
            {"min-non-active-revisions": "10", "max-non-active-revisions": "5"},
            "min-non-active-revisions",
            "must be <= max-non-active-revisions(5)",
        ),
    ],
)
def test_bad_settings_name_their_key(data: dict[str, str], key: str, message: str) -> None:
    with pytest.raises(knative_gc.GcConfigError) as err:
        knative_gc.parse(data)
    assert err.value.key == key and message in str(err.value)
