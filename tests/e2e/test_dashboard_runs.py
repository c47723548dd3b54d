"""The dashboard's Runs view on a real PipelineRun, in headless Chromium (Debian's,
through Playwright).

`ami up` runs a mesh whose only config is a Pipeline: `build` (two steps, a result),
`test` (after build, reads its result; its step prints a line, waits for a gate file,
then fails), `deploy` (guarded by a `when` that is false: skipped) and a `finally`
task. The browser signs in with the mesh's token, sees the run appear in the list,
opens it and must show: the graph with build → test and build → deploy, `test`
Running with its first log line while the step still runs, then, once the gate opens,
`test` Failed with the step's last line, `deploy` Skipped with Tekton's reason, the
finally task Succeeded, and the run Failed. Screenshots go to the test's directory and
to test-output/ at the repository root.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import meshes
from tests.e2e.harness import wait_for
from tests.e2e.test_runtime import Up, until

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
OUTPUT = ROOT / "test-output"

pytestmark = [
    pytest.mark.envoy,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no chromium (make test-deps)"),
    pytest.mark.skipif(
        not (ROOT / "src/amimesh/dashboard/static/vendor/cytoscape.min.js").exists(),
        reason="cytoscape.js is not vendored: run tools/vendor_js.py (make venv does)",
    ),
]

PIPELINE = """\
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: ci}
spec:
  params:
  - {name: env, default: dev}
  - {name: gate}
  tasks:
  - name: build
    taskSpec:
      results: [{name: version}]
      steps:
      - name: compile
        image: golang
        script: |
          echo "compiling the shop"
          echo '<img src=x id=injected>'
          printf '1.2.3' > $(results.version.path)
      - name: package
        image: alpine
        script: echo "packaged"
  - name: test
    runAfter: [build]
    params: [{name: version, value: "$(tasks.build.results.version)"}]
    taskSpec:
      params: [{name: version}]
      steps:
      - name: unit
        image: python
        script: |
          echo "testing $(params.version)"
          i=0
          while [ ! -f "$(params.gate)" ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done
          echo "1 test failed"
          exit 1
  - name: deploy
    runAfter: [build]
    when: [{input: "$(params.env)", operator: in, values: [prod]}]
    taskSpec:
      steps: [{name: push, image: alpine, script: echo deployed}]
  finally:
  - name: report
    taskSpec:
      steps: [{name: notify, image: alpine, script: echo "reported"}]
"""
RUN = """\
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: ci-run-1}
spec:
  pipelineRef: {name: ci}
  params: [{name: gate, value: "%s"}]
"""

# Each task's state and reason in the page's graph, and its edges.
GRAPH = """() => {
  const g = window.amiRunGraph;
  if (!g) return null;
  const nodes = {};
  g.nodes().forEach((n) => { nodes[n.id()] = [n.data("state"), n.data("reason") || ""]; });
  const edges = g.edges().map((e) => `${e.source().id()}->${e.target().id()}`).sort();
  return {nodes, edges};
}"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    # No workload, so no instance to wait for: the mesh is up once its API has the Pipeline.
    with meshes.from_yaml(tmp_path_factory.mktemp("runs"), PIPELINE, ready=None) as up:
        until(lambda: has_pipeline(up), "the mesh's API with the Pipeline", timeout=60)
        yield up


def has_pipeline(up: Up) -> bool:
    with up.client() as c:
        resp = c.get("/api/v1/resources", params={"kind": "Pipeline.tekton.dev"})
    return resp.status_code == 200 and len(resp.json()["items"]) == 1


def screenshot(page: Any, tmp_path: Path, name: str) -> None:
    OUTPUT.mkdir(exist_ok=True)
    for directory in (tmp_path, OUTPUT):
        page.screenshot(path=str(directory / name), full_page=True)


def test_the_runs_view_shows_a_run_its_graph_and_logs(mesh: Up, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    gate = tmp_path / "gate"
    url = f"{mesh.info().api}/dashboard/?token={mesh.state.read_token()}"
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(url)
            page.click("#nav a[data-view=runs]")
            page.wait_for_selector("#pipelineruns-table td.empty", timeout=60_000)

            # A run applied while the list is open shows up in it, then opens.
            meshes.apply(mesh, RUN % gate, "run.yaml")
            row = page.locator('#pipelineruns-table tr[data-name="ci-run-1"]')
            row.wait_for(timeout=60_000)
            assert "ci" in row.inner_text()
            page.wait_for_selector('#taskruns-table tr[data-name="ci-run-1-build"]', timeout=60_000)
            row.click()
            assert page.url.endswith("#run/PipelineRun/default/ci-run-1")

            # While `test` runs: its state in the graph, and the line its step printed.
            def running() -> Any:
                graph = page.evaluate(GRAPH)
                return graph if graph and graph["nodes"].get("test", [""])[0] == "Running" else None

            graph = wait_for(running, timeout=60)
            assert graph["edges"] == ["build->deploy", "build->test"], graph
            assert graph["nodes"]["build"] == ["Succeeded", "Succeeded"], graph
            unit = page.locator('.run-task[data-task="test"] .run-step[data-step="unit"] pre.log')
            wait_for(lambda: "testing 1.2.3" in unit.inner_text(), timeout=60)
            assert "1 test failed" not in unit.inner_text()
            build_log = page.locator('.run-task[data-task="build"] .run-step[data-step="compile"]')
            assert "compiling the shop" in build_log.locator("pre.log").inner_text()
            # A log is text, never markup.
            assert "<img src=x id=injected>" in build_log.locator("pre.log").inner_text()
            assert page.locator("#injected").count() == 0
            screenshot(page, tmp_path, "dashboard-run-running.png")

            gate.write_text("open")
            wait_for(lambda: "1 test failed" in unit.inner_text(), timeout=60)

            def finished() -> Any:
                graph = page.evaluate(GRAPH)
                return graph if graph["nodes"]["report"][0] == "Succeeded" else None

            graph = wait_for(finished, timeout=60)
            assert graph["nodes"]["test"] == ["Failed", "Failed"], graph
            assert graph["nodes"]["deploy"] == [
                "Skipped",
                "When Expressions evaluated to false",
            ], graph
            step = page.locator('.run-task[data-task="test"] .run-step[data-step="unit"]')
            assert step.get_attribute("data-state") == "Failed"
            assert "exit 1" in step.inner_text()
            page.wait_for_selector("#run-head h2 .chip.run-Failed")
            screenshot(page, tmp_path, "dashboard-run.png")

            # The failed task's own TaskRun page: one task, its step's log.
            page.click('.run-task[data-task="test"] a.taskrun')
            assert page.url.endswith("#run/TaskRun/default/ci-run-1-test")
            wait_for(
                lambda: (page.evaluate(GRAPH) or {}).get("nodes") == {"test": ["Failed", "Failed"]},
                timeout=30,
            )
            lone = page.locator('.run-task[data-task="test"] .run-step[data-step="unit"] pre.log')
            wait_for(lambda: "1 test failed" in lone.inner_text(), timeout=30)

            # Back in the list, the run's final status, with Tekton's reason.
            page.click("#nav a[data-view=runs]")
            wait_for(lambda: "Failed" in row.inner_text(), timeout=30)
        finally:
            browser.close()
    assert problems == []
