"""Envoy never rejects what Ami accepted.

Seeded mutants of the examples and of the tests' own configs (`mutants`): every one
that Ami loads without errors is translated for every proxy of its mesh and checked by
`envoy --mode validate` (`envoy_check`). A mutant Envoy rejects, or whose translation
raises, is a bug: the test prints the seed, the mutations and the smallest config that
still fails. The cases found so far are kept under testdata/envoy_property/cases, each
with its expected outcome.

More cases, another seed, one mutant alone (docs/resources.md, "Envoy accepts what Ami
accepts"):

    AMI_PROPERTY_CASES=5000 AMI_PROPERTY_SEED=7 pytest tests/unit/test_envoy_property.py
    AMI_PROPERTY_SEED=7 AMI_PROPERTY_ONLY=1234 pytest tests/unit/test_envoy_property.py
"""

from __future__ import annotations

import collections
import os
import random
import re
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.unit import envoy_check as ec
from tests.unit import mutants as mu

CASES = int(os.environ.get("AMI_PROPERTY_CASES", "600"))
SEED = int(os.environ.get("AMI_PROPERTY_SEED", "20261206"))
ONLY = os.environ.get("AMI_PROPERTY_ONLY")
JOBS = int(os.environ.get("AMI_PROPERTY_JOBS", "2"))
# Configs per Envoy run: one start of Envoy checks them all.
BATCH = 8
CASES_DIR = Path(__file__).parent / "testdata/envoy_property/cases"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> ec.Files:
    return ec.Files.create(tmp_path_factory.mktemp("envoy-property"))


@pytest.fixture(scope="module")
def corpus() -> list[mu.Seed]:
    return mu.load_corpus()


@dataclass(frozen=True)
class Mutant:
    number: int
    seed: mu.Seed
    ops: tuple[mu.Op, ...]

    @property
    def docs(self) -> list[object]:
        return mu.apply(self.seed.docs, self.ops)


def mutants(corpus: list[mu.Seed], seed: int, cases: int) -> Iterator[Mutant]:
    """Mutant `i` depends on (`seed`, `i`) and the corpus alone."""
    index = mu.Index.of(corpus)
    numbers = [int(ONLY)] if ONLY is not None else range(cases)
    for i in numbers:
        rng = random.Random(f"{seed}/{i}")
        chosen = mu.pick(rng, corpus, index)
        yield Mutant(i, chosen, tuple(mu.mutate(rng, chosen, index)))


def run(
    items: Iterator[tuple[Mutant, str]], files: ec.Files
) -> tuple[collections.Counter[str], list[tuple[Mutant, ec.Outcome]]]:
    """Every mutant's outcome counted, and the bugs; Envoy runs `JOBS` at a time, each on
    `BATCH` configs, and a config seen before is not checked again."""
    counts: collections.Counter[str] = collections.Counter()
    bugs: list[tuple[Mutant, ec.Outcome]] = []
    seen: set[bytes] = set()
    batch: list[tuple[Mutant, ec.Prepared]] = []
    pending: collections.deque[tuple[list[Mutant], Future[list[ec.Outcome]]]]
    pending = collections.deque()

    def collect(limit: int) -> None:
        while len(pending) > limit:
            group, future = pending.popleft()
            for m, outcome in zip(group, future.result(), strict=True):
                counts[outcome.kind] += 1
                if outcome.bug:
                    bugs.append((m, outcome))

    with ThreadPoolExecutor(JOBS) as pool:
        for number, (m, text) in enumerate(items):
            prepared = ec.prepare(text, files)
            if prepared.outcome is not None:
                counts[prepared.outcome.kind] += 1
                if prepared.outcome.bug:
                    bugs.append((m, prepared.outcome))
                continue
            digest = prepared.digest
            if digest in seen:
                counts["repeated"] += 1
                continue
            seen.add(digest)
            batch.append((m, prepared))
            if len(batch) == BATCH:
                group = [p for _, p in batch]
                name = f"batch-{number}"
                pending.append(
                    ([m for m, _ in batch], pool.submit(ec.validate, group, files, name))
                )
                batch = []
                collect(2 * JOBS)
        if batch:
            group = [p for _, p in batch]
            pending.append(([m for m, _ in batch], pool.submit(ec.validate, group, files, "last")))
        collect(0)
    return counts, bugs


def still_fails(text: str, files: ec.Files, kind: str) -> bool:
    return ec.check(text, files).kind == kind


_WHAT = {"rejected": "is rejected by Envoy", "crashed": "makes the translation raise"}


def report(m: Mutant, outcome: ec.Outcome, files: ec.Files) -> str:
    """The failure, minimized: fewer mutations, then fewer documents."""
    ops = list(m.ops)
    for op in list(ops):
        fewer = [o for o in ops if o is not op]
        if fewer and still_fails(mu.dump(mu.apply(m.seed.docs, fewer)), files, outcome.kind):
            ops = fewer
    docs = mu.apply(m.seed.docs, ops)
    for doc in list(docs):
        fewer_docs = [d for d in docs if d is not doc]
        if fewer_docs and still_fails(mu.dump(fewer_docs), files, outcome.kind):
            docs = fewer_docs
    final = ec.check(mu.dump(docs), files)
    return "\n".join(
        [
            f"A config Ami accepted {_WHAT[outcome.kind]}: AMI_PROPERTY_SEED={SEED}"
            f" AMI_PROPERTY_ONLY={m.number} reproduces it.",
            f"seed config: {m.seed.name}",
            "mutations: " + "; ".join(o.describe() for o in m.ops),
            "fewest mutations that still fail: " + "; ".join(o.describe() for o in ops),
            f"{final.kind}: {final.detail or outcome.detail}",
            "--- the smallest config that still fails ---",
            mu.dump(docs),
        ]
    )


@pytest.mark.envoy
@pytest.mark.slow
def test_envoy_accepts_every_seed_config(corpus: list[mu.Seed], files: ec.Files) -> None:
    """The configs mutants start from: the examples, the tests' and the corpus's own."""
    assert len(corpus) >= 80, [s.name for s in corpus]
    names = {s.name.split(":")[0] for s in corpus}
    assert {"examples/shop/mesh", "examples/mesh"} <= names
    items = ((Mutant(-1, s, ()), mu.dump(s.docs)) for s in corpus)
    counts, bugs = run(items, files)
    assert not bugs, [(m.seed.name, o.detail) for m, o in bugs]
    assert counts["refused"] == 0 and counts["crashed"] == 0, counts


@pytest.mark.envoy
@pytest.mark.slow
def test_envoy_accepts_what_ami_accepts(corpus: list[mu.Seed], files: ec.Files) -> None:
    items = ((m, mu.dump(m.docs)) for m in mutants(corpus, SEED, CASES))
    counts, bugs = run(items, files)
    print(f"AMI_PROPERTY_SEED={SEED} AMI_PROPERTY_CASES={CASES}: {dict(counts)}", file=sys.stderr)
    if bugs:
        shown = "\n\n".join(report(m, o, files) for m, o in bugs[:3])
        every = "\n".join(f"  mutant {m.number}: {_last_line(o.detail)}" for m, o in bugs)
        pytest.fail(f"{len(bugs)} of {CASES} mutants (seed {SEED}) failed:\n{every}\n\n{shown}")
    if ONLY is None:
        # Many mutants reach Envoy (a tenth is far below what a seed gives).
        assert counts["accepted"] >= CASES // 10, counts


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


# --- the cases found so far --------------------------------------------------------------

_EXPECT = re.compile(r"^# expect: (refused|accepted)(?:: (.*))?$", re.MULTILINE)


def case_files() -> list[Path]:
    return sorted(CASES_DIR.glob("*.yaml"))


@pytest.mark.envoy
@pytest.mark.parametrize("path", case_files(), ids=lambda p: p.stem)
def test_found_case(path: Path, files: ec.Files) -> None:
    """Each file says what Ami (and Envoy) must make of it in a first comment line:
    `# expect: refused: TEXT` (an error containing TEXT) or `# expect: accepted`."""
    text = path.read_text()
    expected = _EXPECT.search(text)
    assert expected is not None, f"{path.name}: no '# expect: ...' line"
    outcome = ec.check(text, files)
    assert outcome.kind == expected.group(1), outcome.detail
    if expected.group(2):
        assert expected.group(2) in outcome.detail, outcome.detail
