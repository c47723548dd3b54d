"""Seeded fuzz: mutants of the examples with hostile fragments spliced in either load or
give ConfigErrors, never an exception."""

from __future__ import annotations

import collections

import pytest

from amimesh.resources import ConfigError, Resource, parse_bytes
from tests import hostile_yaml as hostile

SEEDS = [1, 2, 3]
CASES = 120  # per seed


@pytest.mark.parametrize("seed", SEEDS)
def test_mutants_load_or_give_config_errors(seed: int) -> None:
    outcomes: collections.Counter[str] = collections.Counter()
    for name, content in hostile.mutants(seed, CASES):
        result = parse_bytes(content, name)
        assert all(isinstance(r, Resource) for r in result.resources)
        for error in result.errors:
            assert isinstance(error, ConfigError)
            assert error.file == name and error.message, error
            assert str(error).startswith(name + ": ")
        refused = any("YAML refused" in e.message for e in result.errors)
        outcomes["refused" if refused else "errors" if result.errors else "loaded"] += 1
    # Every kind of outcome happens: the fuzz reaches the loader's limits, the schema
    # and the checks, and leaves some texts valid.
    assert min(outcomes.values()) >= CASES // 40, outcomes
    assert set(outcomes) == {"refused", "errors", "loaded"}
