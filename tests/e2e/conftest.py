from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Mesh


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    """A fresh control plane (delta xDS) with no proxies yet; everything stopped after."""
    m = Mesh(tmp_path).start()
    try:
        yield m
    finally:
        m.stop()


@pytest.fixture(scope="module")
def module_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    """One mesh shared by a module's tests, for speed; tests must not assume it is empty."""
    m = Mesh(tmp_path_factory.mktemp("mesh")).start()
    try:
        yield m
    finally:
        m.stop()
