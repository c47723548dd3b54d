"""Trigger filters: Knative's `new_trigger_filters` cases, re-expressed as a table, and
the `filter.attributes` rules."""

from __future__ import annotations

from typing import Any

import pytest

from amimesh.eventing.filters import Result, attributes_filter, dialect_filter, matches


def event(type_: str = "dev.example.type", source: str = "dev.example.source", **ext: str):
    return {"specversion": "1.0", "id": "1", "type": type_, "source": source, **ext}


MATCHED = event("org.matched.type", "org.matched.source")
UNMATCHED = event("org.wrong.type", "org.wrong.source")

SINGLE_DIALECT = {
    "exact": {"exact": {"type": "org.matched.type", "source": "org.matched.source"}},
    "prefix": {"prefix": {"type": "org.match", "source": "org.match"}},
    "suffix": {"suffix": {"type": "ed.type", "source": "ed.source"}},
    "cesql": {"cesql": "type = 'org.matched.type' AND source = 'org.matched.source'"},
}

ANY_FILTER = [
    {
        "any": [
            {"exact": {"type": "exact.event.type"}},
            {"prefix": {"type": "prefix"}},
            {"suffix": {"type": "suffix"}},
            {"not": {"cesql": "type LIKE '%event.type%'"}},
            {"cesql": "type = 'cesql.event.type'"},
        ]
    }
]
ALL_FILTER = [
    {
        "all": [
            {"exact": {"type": "exact.prefix.suffix.event.type"}},
            {"prefix": {"type": "exact.prefix"}},
            {"suffix": {"type": "suffix.event.type"}},
            {"cesql": "type LIKE 'exact.prefix.suffix%'"},
        ]
    }
]
ANY_EXACTS = [
    {
        "any": [
            {"exact": {"type": f"dev.knative.apiserver.resource.{verb}"}}
            for verb in ("update", "add", "delete")
        ]
    }
]
MISSING_EXTENSION = [
    {
        "all": [
            {"exact": {"extensionattribute": "extensionvalue"}},
            {"prefix": {"extensionattribute": "extension"}},
            {"suffix": {"extensionattribute": "value"}},
            {"cesql": "extensionattribute LIKE '%value'"},
        ]
    }
]
FIRST_TRIGGER = [{"any": [{"exact": {"type": "type1"}}, {"prefix": {"type": "both"}}]}]
SECOND_TRIGGER = [{"any": [{"exact": {"type": "type2"}}, {"prefix": {"type": "both"}}]}]

CASES: list[tuple[str, dict[str, str] | None, list[dict[str, Any]], dict[str, str], bool]] = [
    *[(f"{name} matched", None, [f], MATCHED, True) for name, f in SINGLE_DIALECT.items()],
    *[(f"{name} unmatched", None, [f], UNMATCHED, False) for name, f in SINGLE_DIALECT.items()],
    ("any exact", None, ANY_FILTER, event("exact.event.type"), True),
    ("any prefix", None, ANY_FILTER, event("prefix.event.type"), True),
    ("any suffix", None, ANY_FILTER, event("event.type.suffix"), True),
    ("any not cesql", None, ANY_FILTER, event("not.type.event"), True),
    ("any cesql", None, ANY_FILTER, event("cesql.event.type"), True),
    ("any none", None, ANY_FILTER, event("not.event.type"), False),
    (
        "any of exacts: update",
        None,
        ANY_EXACTS,
        event("dev.knative.apiserver.resource.update"),
        True,
    ),
    ("any of exacts: add", None, ANY_EXACTS, event("dev.knative.apiserver.resource.add"), True),
    (
        "any of exacts: delete",
        None,
        ANY_EXACTS,
        event("dev.knative.apiserver.resource.delete"),
        True,
    ),
    ("any of exacts: other", None, ANY_EXACTS, event("prefix.event.type"), False),
    ("all: none match", None, ALL_FILTER, event("not.event.type"), False),
    ("all: prefix only", None, ALL_FILTER, event("exact.prefix.suffix.event"), False),
    (
        "all: prefix, suffix",
        None,
        ALL_FILTER,
        event("exact.prefix.suffix.event.suffix.event.type"),
        False,
    ),
    ("all: every one", None, ALL_FILTER, event("exact.prefix.suffix.event.type"), True),
    ("two triggers: first, type1", None, FIRST_TRIGGER, event("type1"), True),
    ("two triggers: first, both", None, FIRST_TRIGGER, event("both.should.match"), True),
    ("two triggers: first, type2", None, FIRST_TRIGGER, event("type2"), False),
    ("two triggers: first, type3", None, FIRST_TRIGGER, event("type3"), False),
    ("two triggers: second, type1", None, SECOND_TRIGGER, event("type1"), False),
    ("two triggers: second, both", None, SECOND_TRIGGER, event("both.should.match"), True),
    ("two triggers: second, type2", None, SECOND_TRIGGER, event("type2"), True),
    ("two triggers: second, type3", None, SECOND_TRIGGER, event("type3"), False),
    ("missing extension", None, MISSING_EXTENSION, event(), False),
    (
        "extension present",
        None,
        MISSING_EXTENSION,
        event(extensionattribute="extensionvalue"),
        True,
    ),
    (
        "filter.attributes with empty filters: match",
        {"type": "filter.attribute.event.type"},
        [],
        event("filter.attribute.event.type"),
        True,
    ),
    (
        "filter.attributes with empty filters: other",
        {"type": "filter.attribute.event.type"},
        [],
        event("some.other.type"),
        False,
    ),
    (
        "filters override filter: filters' type",
        {"type": "filter.check.event.type"},
        [{"exact": {"type": "subscriptionapi.filters.override.event.type"}}],
        event("subscriptionapi.filters.override.event.type"),
        True,
    ),
    (
        "filters override filter: filter's type",
        {"type": "filter.check.event.type"},
        [{"exact": {"type": "subscriptionapi.filters.override.event.type"}}],
        event("filter.check.event.type"),
        False,
    ),
    ("not: inverts a failing exact", None, [{"not": {"exact": {"type": "x"}}}], event("y"), True),
    ("not: inverts a passing exact", None, [{"not": {"exact": {"type": "x"}}}], event("x"), False),
    ("not not", None, [{"not": {"not": {"prefix": {"type": "x"}}}}], event("xy"), True),
    (
        "nested any in all",
        None,
        [
            {
                "all": [
                    {"any": [{"exact": {"type": "a"}}, {"exact": {"type": "b"}}]},
                    {"not": {"suffix": {"source": "bad"}}},
                ]
            }
        ],
        event("b", "good"),
        True,
    ),
    (
        "nested any in all, not fails",
        None,
        [
            {
                "all": [
                    {"any": [{"exact": {"type": "a"}}, {"exact": {"type": "b"}}]},
                    {"not": {"suffix": {"source": "bad"}}},
                ]
            }
        ],
        event("b", "very.bad"),
        False,
    ),
    (
        "list of filters: all must pass",
        None,
        [{"prefix": {"type": "a"}}, {"suffix": {"type": "z"}}],
        event("a.m"),
        False,
    ),
    ("no filter delivers", None, [], event(), True),
    ("empty filter object delivers", None, [{}], event(), True),
]


@pytest.mark.parametrize(
    ("attributes", "filters", "ev", "delivered"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_trigger_filters(
    attributes: dict[str, str] | None,
    filters: list[dict[str, Any]],
    ev: dict[str, str],
    delivered: bool,
) -> None:
    assert matches(attributes, filters, ev) is delivered


def test_attributes_empty_value_means_present_and_not_empty() -> None:
    wanted = {"myext": ""}
    assert attributes_filter(wanted, event(myext="v")) is Result.PASS
    assert attributes_filter(wanted, event(myext="")) is Result.FAIL
    assert attributes_filter(wanted, event()) is Result.FAIL


def test_attributes_exact_incl_extension() -> None:
    wanted = {"type": "t", "myext": "v"}
    assert attributes_filter(wanted, event("t", myext="v")) is Result.PASS
    assert attributes_filter(wanted, event("t", myext="w")) is Result.FAIL
    assert attributes_filter(wanted, event("t")) is Result.FAIL
    assert attributes_filter({}, event()) is Result.NONE


def test_not_of_no_filter_is_no_filter() -> None:
    assert dialect_filter({"not": {}}, event()) is Result.NONE
    assert dialect_filter({"all": []}, event()) is Result.NONE


def test_cesql_sees_typed_extensions_and_fails_on_errors() -> None:
    ev = {**event("t"), "count": 7, "vip": True}
    assert dialect_filter({"cesql": "count > 5 AND vip"}, ev) is Result.PASS
    assert dialect_filter({"cesql": "count > 10"}, ev) is Result.FAIL
    # A missing attribute is an error: the event does not pass, even under NOT.
    assert dialect_filter({"cesql": "NOT (missing = 'x')"}, ev) is Result.FAIL
    # A value that is not a boolean does not pass.
    assert dialect_filter({"cesql": "count"}, ev) is Result.FAIL
