"""Live reload's pure parts: which programs are watched, which files count, what
changed, when a burst settles; a Knative template stamped with its digest is a new
revision; the replicas' names; the bounded scan and the content digest."""

from __future__ import annotations

from pathlib import Path

import pytest

from amimesh.config.watch import content_digest, scan
from amimesh.config.watch_rules import Bounds, Debounce, changes, ignored_dir, ignored_file
from amimesh.resources import parse_documents
from amimesh.resources.meta import Resource
from amimesh.resources.workload import reload_wanted
from amimesh.runtime.plan import replica_name
from amimesh.serving.expand import expand
from amimesh.serving.reload import SOURCE_DIGEST, source_dirs, stamped


@pytest.mark.parametrize(
    ("annotations", "has_dir", "default", "wanted"),
    [
        ({}, True, True, True),  # --reload, a workingDir of its own
        ({}, False, True, False),  # --reload, runs in the mesh's directory: not its source
        ({}, True, False, False),  # no --reload
        ({"ami.dev/reload": "true"}, False, False, True),
        ({"ami.dev/reload": "false"}, True, True, False),
    ],
)
def test_which_programs_are_reloaded(
    annotations: dict[str, str], has_dir: bool, default: bool, wanted: bool
) -> None:
    assert reload_wanted(annotations, has_working_dir=has_dir, default=default) is wanted


@pytest.mark.parametrize(
    "name",
    [".app.py.swp", ".app.py.swx", "app.py~", "#app.py#", ".#app.py", "4913", "app.pyc", "x.tmp"],
)
def test_editor_and_compiled_files_are_no_change(name: str) -> None:
    assert ignored_file(name)


@pytest.mark.parametrize("name", ["app.py", "index.html", "requirements.txt", ".env", "Makefile"])
def test_source_files_count(name: str) -> None:
    assert not ignored_file(name)


def test_caches_and_version_control_are_not_looked_into() -> None:
    assert ignored_dir("__pycache__") and ignored_dir(".git") and ignored_dir("node_modules")
    assert not ignored_dir("src") and not ignored_dir("templates")


def test_changes_are_additions_removals_and_modifications() -> None:
    before = {"a.py": (1, 10), "b.py": (2, 20), "c.py": (3, 30)}
    after = {"a.py": (1, 10), "b.py": (2, 21), "d.py": (4, 40)}
    assert changes(before, after) == ["b.py", "c.py", "d.py"]
    assert changes(after, after) == []


def test_a_burst_settles_after_its_last_change() -> None:
    d = Debounce(quiet_s=0.3, max_wait_s=3.0)
    assert not d.due(100.0)  # nothing changed
    d = d.changed(10.0).changed(10.2)
    assert not d.due(10.4)  # 0.2 s after the last change
    assert d.due(10.5)
    assert not d.fired().due(20.0)


def test_a_burst_without_pause_still_fires_after_max_wait() -> None:
    d = Debounce(quiet_s=0.3, max_wait_s=3.0)
    t = 0.0
    while t < 2.9:
        d = d.changed(t)
        assert not d.due(t)
        t += 0.1
    d = d.changed(3.0)
    assert d.due(3.0)


def test_a_reloaded_replica_has_a_name_of_its_own() -> None:
    assert replica_name("web", 0) == "web-0"
    assert replica_name("web", 1, 3) == "web-1-r3"


def test_the_scan_is_bounded_and_skips_what_does_not_count(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("x")
    (tmp_path / ".app.py.swp").write_text("x")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "app.cpython-311.pyc").write_text("x")
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (deep / "deep.py").write_text("x")
    (tmp_path / "a" / "shallow.py").write_text("x")
    (tmp_path / "loop").symlink_to(tmp_path)  # not followed
    assert sorted(scan(tmp_path)) == ["a/b/c/deep.py", "a/shallow.py", "app.py"]
    assert sorted(scan(tmp_path, Bounds(max_depth=2))) == ["a/shallow.py", "app.py"]
    assert len(scan(tmp_path, Bounds(max_files=2))) == 2


def test_the_digest_follows_content_not_times(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("one")
    first = content_digest(tmp_path)
    (tmp_path / "app.py").write_text("one")  # saved as it was
    assert content_digest(tmp_path) == first
    (tmp_path / "app.py~").write_text("a backup")
    assert content_digest(tmp_path) == first
    (tmp_path / "app.py").write_text("two")
    assert content_digest(tmp_path) != first


KSVC = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello, namespace: shop}
spec:
  template:
    metadata: {annotations: %s}
    spec:
      containers:
        - image: example.com/hello:1
          %s
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ami-images, namespace: knative-serving}
data:
  example.com/hello: |
    command: [python3, app.py]
    workingDir: apps/hello
"""


def _resources(annotations: str = "{}", container: str = "args: []") -> list[Resource]:
    result = parse_documents(KSVC % (annotations, container), "t.yaml")
    assert not result.errors, result.errors
    return list(result.resources)


def test_a_knative_service_follows_its_containers_directory() -> None:
    # The image map's workingDir, the container's own over it.
    assert source_dirs(_resources(), default=True) == {("shop", "hello"): "apps/hello"}
    own = _resources(container="workingDir: src")
    assert source_dirs(own, default=True) == {("shop", "hello"): "src"}
    assert source_dirs(_resources(), default=False) == {}
    opted = _resources('{ami.dev/reload: "true"}')
    assert source_dirs(opted, default=False) == {("shop", "hello"): "apps/hello"}
    assert source_dirs(_resources('{ami.dev/reload: "false"}'), default=True) == {}


def test_a_new_digest_is_a_new_revision_and_the_same_digest_is_not() -> None:
    written = _resources()
    first = expand(stamped(written, {("shop", "hello"): "aaaa"}), [], now=1.0)
    assert [r.name for r in first.history] == ["hello-00001"]
    assert first.history[0].annotations[SOURCE_DIGEST] == "aaaa"
    same = expand(stamped(written, {("shop", "hello"): "aaaa"}), first.history, now=2.0)
    assert [r.name for r in same.history] == ["hello-00001"]
    changed = expand(stamped(written, {("shop", "hello"): "bbbb"}), first.history, now=3.0)
    assert [r.name for r in changed.history] == ["hello-00001", "hello-00002"]
    # What users wrote is left as it was.
    assert SOURCE_DIGEST not in written[0].spec.template.metadata.annotations


def test_the_annotation_is_checked() -> None:
    text = """
apiVersion: ami.dev/v1alpha1
kind: Workload
metadata: {name: web, annotations: {ami.dev/reload: "yes"}}
spec: {command: [python3, app.py]}
"""
    result = parse_documents(text, "w.yaml")
    assert [f"{e.field}: {e.message}" for e in result.errors] == [
        'metadata.annotations["ami.dev/reload"]: must be "true" or "false", got "yes"'
    ]
