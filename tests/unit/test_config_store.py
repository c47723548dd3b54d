from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from amimesh.config import directory
from amimesh.config.directory import DirectorySource, yaml_files
from amimesh.config.store import Store
from amimesh.model.snapshot import Instance
from amimesh.resources import ParseResult, parse_documents

SVC = """
apiVersion: v1
kind: Service
metadata: {name: %s}
spec:
  selector: {app: %s}
  ports: [{name: http, port: 80}]
"""


def test_source_update_is_all_or_nothing() -> None:
    store = Store()
    assert store.set_source("a.yaml", parse_documents(SVC % ("one", "one"), "a.yaml")) == []
    v = store.version
    broken = SVC % ("one", "one") + "---\n" + SVC.replace("port: 80", "port: 0") % ("two", "two")
    errors = store.set_source("a.yaml", parse_documents(broken, "a.yaml"))
    assert errors and "spec.ports[0].port" in str(errors[0])
    # The last good config keeps serving; the error is kept for status.
    assert [r.name for r in store.resources()] == ["one"]
    assert store.errors() == errors
    assert store.version > v
    # Fixing the file clears the errors and applies everything.
    fixed = SVC % ("one", "one") + "---\n" + SVC % ("two", "two")
    assert store.set_source("a.yaml", parse_documents(fixed, "a.yaml")) == []
    assert sorted(r.name for r in store.resources()) == ["one", "two"]
    assert store.errors() == []


def test_unchanged_source_is_not_a_change() -> None:
    store = Store()
    calls: list[int] = []
    store.subscribe(lambda: calls.append(store.version))
    store.set_source("a.yaml", parse_documents(SVC % ("one", "one"), "a.yaml"))
    store.set_source("a.yaml", parse_documents(SVC % ("one", "one"), "a.yaml"))
    assert len(calls) == 1


def test_same_resource_in_two_sources_is_an_error() -> None:
    store = Store()
    store.set_source("a.yaml", parse_documents(SVC % ("one", "one"), "a.yaml"))
    errors = store.set_source("b.yaml", parse_documents(SVC % ("one", "x"), "b.yaml"))
    assert len(errors) == 1
    assert "Service/default/one is already defined in a.yaml" in str(errors[0])
    assert store.get(("Service", "default", "one")).spec.selector == {"app": "one"}  # type: ignore[union-attr]


def test_instances_register_and_leave() -> None:
    store = Store()
    i = Instance(id="a-0", workload="a", labels={"app": "a"}, ports={80: 1234})
    store.register_instance(i)
    v = store.version
    store.register_instance(i)
    assert store.version == v
    store.deregister_instance("a-0")
    assert store.instances() == []


def test_directory_source_tracks_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(SVC % ("one", "one"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yml").write_text(SVC % ("two", "two"))
    (tmp_path / ".hidden.yaml").write_text("not: [valid")
    (tmp_path / "notes.txt").write_text("ignored")
    assert [p.name for p in yaml_files(tmp_path)] == ["a.yaml", "b.yml"]
    store = Store()
    src = DirectorySource(store, tmp_path)
    assert src.sync() == []
    assert sorted(r.name for r in store.resources()) == ["one", "two"]
    (tmp_path / "sub" / "b.yml").unlink()
    (tmp_path / "a.yaml").write_text("kind: [")
    errors = src.sync()
    assert len(errors) == 1 and str(tmp_path / "a.yaml") in str(errors[0])
    assert [r.name for r in store.resources()] == ["one"]


def test_apply_upserts_and_overrides_files_until_deleted() -> None:
    store = Store()
    store.set_source("a.yaml", parse_documents(SVC % ("one", "from-file"), "a.yaml"))
    key = ("Service", "default", "one")
    assert store.apply(parse_documents(SVC % ("one", "applied"), "-")) == []
    assert store.get(key).spec.selector == {"app": "applied"}  # type: ignore[union-attr]
    assert store.source_of(key) == "api"
    assert len(store.resources()) == 1
    # Re-applying replaces; an unchanged apply is no change at all.
    v = store.version
    store.apply(parse_documents(SVC % ("one", "applied"), "-"))
    assert store.version == v
    assert store.delete([key, ("Service", "default", "nope")]) == [key]
    assert store.get(key).spec.selector == {"app": "from-file"}  # type: ignore[union-attr]
    # A broken apply changes nothing.
    bad = parse_documents(SVC.replace("port: 80", "port: 0") % ("two", "two"), "-")
    assert store.apply(bad) and store.get(("Service", "default", "two")) is None


def test_a_file_written_before_the_watch_starts_is_read_when_it_does(tmp_path: Path) -> None:
    # The control plane loads the directory, then starts its watch later (once xDS
    # serves): a file written in between must not wait for its next change.
    (tmp_path / "a.yaml").write_text(SVC % ("one", "one"))
    store = Store()
    src = DirectorySource(store, tmp_path)
    assert src.sync() == []
    (tmp_path / "b.yaml").write_text(SVC % ("two", "two"))

    async def watch_until_read() -> list[str]:
        stop = asyncio.Event()
        task = asyncio.create_task(src.watch(stop))
        try:
            for _ in range(600):  # up to a minute on a busy machine
                names = sorted(r.name for r in store.resources())
                if names == ["one", "two"]:
                    return names
                await asyncio.sleep(0.1)
            return sorted(r.name for r in store.resources())
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)

    assert asyncio.run(watch_until_read()) == ["one", "two"]


def test_a_sync_parses_only_the_files_changed_since_they_were_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.yaml").write_text(SVC % ("one", "one"))
    (tmp_path / "b.yaml").write_text(SVC % ("two", "two"))
    parsed: list[str] = []
    real = directory.load_path

    def counting(path: Path) -> ParseResult:
        parsed.append(path.name)
        return real(path)

    monkeypatch.setattr(directory, "load_path", counting)
    store = Store()
    src = DirectorySource(store, tmp_path)
    assert src.sync() == [] and sorted(parsed) == ["a.yaml", "b.yaml"]
    parsed.clear()
    assert src.sync() == [] and parsed == []
    (tmp_path / "b.yaml").write_text(SVC % ("two", "changed"))
    assert src.sync() == [] and parsed == ["b.yaml"]
    assert store.get(("Service", "default", "two")).spec.selector == {"app": "changed"}  # type: ignore[union-attr]
    parsed.clear()
    (tmp_path / "b.yaml").unlink()
    (tmp_path / "b.yaml").write_text(SVC % ("two", "back"))
    assert src.reload([tmp_path / "b.yaml"]) == [] and parsed == ["b.yaml"]
    assert src.sync() == [] and parsed == ["b.yaml"]
