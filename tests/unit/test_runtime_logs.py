"""`ami logs`: which files a name means, and how they print."""

from __future__ import annotations

import io
from pathlib import Path

from amimesh.agent import config as ac
from amimesh.model.proxy import Proxy
from amimesh.runtime import logs
from amimesh.runtime.state import StateDir


def instance(st: StateDir, name: str, workload: str, *, app: bool = True) -> None:
    iid = f"{name}.default"
    cfg = ac.AgentConfig(
        name=name,
        proxy=Proxy(id=iid, workload=workload),
        xds=ac.XdsSpec(port=1),
        envoy=ac.EnvoySpec(bootstrap="b", log="l"),
        app=ac.AppSpec(command=("x",), cwd=".", log="l") if app else None,
    )
    (st.instances / iid).mkdir(parents=True)
    ac.write(st.instances / iid / "agent.json", cfg)


def test_select_by_workload_instance_or_id(tmp_path: Path) -> None:
    st = StateDir(tmp_path).create()
    instance(st, "api-0", "api")
    instance(st, "api-1", "api")
    instance(st, "gw-0", "gw", app=False)
    assert logs.select(st, "api") == [
        ("api-0", st.logs / "api-0.default.log"),
        ("api-1", st.logs / "api-1.default.log"),
    ]
    assert logs.select(st, "api-1") == [("api-1", st.logs / "api-1.default.log")]
    assert logs.select(st, "api-1.default", envoy=True) == [
        ("api-1", st.logs / "api-1.default.envoy.log")
    ]
    assert logs.select(st, "gw") == [("gw-0", st.logs / "gw-0.default.envoy.log")]
    assert logs.select(st, "gw", access=True) == [("gw-0", st.logs / "gw-0.default.access.log")]
    assert logs.select(st, "api-1", access=True) == [
        ("api-1", st.logs / "api-1.default.access.log")
    ]
    assert logs.select(st, "nope") == []


def test_show_prefixes_several_files_and_keeps_partial_lines(tmp_path: Path) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text("one\ntwo\n")
    b.write_bytes(b"three\nno newline yet")
    out = io.StringIO()
    logs.show([("api-0", a), ("api-10", b)], out=out)
    assert out.getvalue().splitlines() == [
        "api-0  | one",
        "api-0  | two",
        "api-10 | three",
        "api-10 | no newline yet",
    ]
    single = io.StringIO()
    logs.show(
        [
            ("api-0", a),
        ],
        out=single,
    )
    assert single.getvalue() == "one\ntwo\n"


def test_tail_reads_only_what_is_new_and_survives_truncation(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_text("a\nb")
    tail = logs._Tail("x", path)
    assert tail.lines() == ["a"]
    with open(path, "a") as f:
        f.write("c\nd\n")
    assert tail.lines() == ["bc", "d"]
    path.write_text("new\n")
    assert tail.lines() == ["new"]
    assert logs._Tail("y", tmp_path / "missing").lines() == []
