// Ami dashboard, the Runs view: Tekton PipelineRuns and TaskRuns (/api/v1/pipelines/runs),
// a run's task graph (/api/v1/pipelines/graph/...) and its steps' logs
// (/api/v1/pipelines/logs/..., read from where the last read ended, as
// `ami pipelinerun logs -f` does). app.js calls window.amiRuns(helpers) and drives the
// refresh; this file only defines. No inline code, every text goes in as text.
"use strict";

window.amiRuns = function (h) {
  const { $, el, show, fill, chip, api, fmtTime } = h;
  // A log box keeps at most this much text: the view of a huge log is its end.
  const MAX_LOG_CHARS = 256 * 1024;
  const STATES = ["Succeeded", "Failed", "Running", "Pending", "Skipped"];
  // The list shows the newest runs of each kind, this many.
  const MAX_ROWS = 200;

  const runs = {
    run: null, // {kind, namespace, name} on a run's page
    graph: null, // the last /graph answer
    graphKey: "",
    logs: new Map(), // "ns/taskrun/step" -> {pre, offset, finished, reading}
    shape: "",
  };
  let cy = null;

  // --- formatting ------------------------------------------------------------------------

  function seconds(stamp) {
    const t = stamp ? Date.parse(stamp) : NaN;
    return Number.isNaN(t) ? null : t / 1000;
  }

  function fmtDuration(start, end) {
    const s = seconds(start);
    if (s === null) return "-";
    const e = seconds(end) ?? Date.now() / 1000;
    let d = Math.max(0, Math.round(e - s));
    if (d < 60) return d + "s";
    const parts = [];
    for (const [unit, size] of [["h", 3600], ["m", 60], ["s", 1]]) {
      if (d >= size || unit === "s") {
        parts.push(Math.floor(d / size) + unit);
        d %= size;
      }
    }
    return parts.join("");
  }

  // Tekton's condition as the dashboard's five states.
  function runState(obj) {
    const c = ((obj.status || {}).conditions || [{}])[0] || {};
    if (c.status === "True") return ["Succeeded", c.reason || "Succeeded"];
    if (c.status === "False") return ["Failed", c.reason || "Failed"];
    if (c.status === "Unknown" && c.reason && c.reason !== "Started" && c.reason !== "Pending") {
      return ["Running", c.reason];
    }
    return ["Pending", c.reason || "Pending"];
  }

  function stateChip(state, reason) {
    const cls = STATES.includes(state) ? "run-" + state : "";
    return el("span", { class: `chip ${cls}`, title: reason || state, text: reason && reason !== state ? `${state}: ${reason}` : state });
  }

  function runHref(kind, ns, name) {
    return `#run/${kind}/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
  }

  // --- the list ------------------------------------------------------------------------

  async function refreshList() {
    const [prs, trs] = await Promise.all([
      api("/api/v1/pipelines/runs", { kind: "PipelineRun" }),
      api("/api/v1/pipelines/runs", { kind: "TaskRun" }),
    ]);
    const newest = (items) =>
      [...((items || {}).items || [])].sort((a, b) =>
        String(b.metadata.creationTimestamp || "").localeCompare(String(a.metadata.creationTimestamp || "")));
    const more = (items, kind) => {
      const n = ((items || {}).items || []).length - MAX_ROWS;
      return n > 0 ? [el("tr", {}, el("td", { class: "empty", colspan: 6, text: `${n} older ${kind}s not shown (ami ${kind.toLowerCase()} list)` }))] : [];
    };
    const row = (kind, r, what) => {
      const [st, reason] = runState(r);
      const status = r.status || {};
      const m = r.metadata;
      return el("tr", { dataset: { kind, namespace: m.namespace, name: m.name }, onclick: () => { window.location.hash = runHref(kind, m.namespace, m.name); } },
        el("td", {}, el("a", { href: runHref(kind, m.namespace, m.name), text: m.name })),
        el("td", { text: m.namespace }),
        el("td", { text: what || "-" }),
        el("td", {}, stateChip(st, reason)),
        el("td", { text: fmtTime(status.startTime) }),
        el("td", { class: "num", text: fmtDuration(status.startTime, status.completionTime) }));
    };
    fill($("#pipelineruns-table tbody"),
      [...newest(prs).slice(0, MAX_ROWS).map((r) => row("PipelineRun", r, (r.metadata.labels || {})["tekton.dev/pipeline"])),
        ...more(prs, "PipelineRun")],
      6, prs ? "no PipelineRuns" : "this control plane runs no pipelines");
    fill($("#taskruns-table tbody"),
      [...newest(trs).slice(0, MAX_ROWS).map((r) => {
        const labels = r.metadata.labels || {};
        const task = labels["tekton.dev/task"] || labels["tekton.dev/pipelineTask"];
        const from = labels["tekton.dev/pipelineRun"];
        return row("TaskRun", r, from ? `${task} (in ${from})` : task);
      }), ...more(trs, "TaskRun")],
      6, trs ? "no TaskRuns" : "this control plane runs no pipelines");
  }

  // --- a run's page --------------------------------------------------------------------

  const GRAPH_STYLE = [
    {
      selector: "node",
      style: {
        shape: "round-rectangle",
        label: "data(label)",
        "text-wrap": "wrap",
        "text-valign": "center",
        "font-size": 11,
        width: 180,
        height: 48,
        "text-max-width": 176,
        "border-width": 2,
        "background-color": "#eef1f5",
        "border-color": "#9aa4b2",
        color: "#1d2430",
      },
    },
    { selector: 'node[state = "Succeeded"]', style: { "background-color": "#dff3e6", "border-color": "#2e9d58" } },
    { selector: 'node[state = "Failed"]', style: { "background-color": "#fde2df", "border-color": "#d0453b" } },
    { selector: 'node[state = "Running"]', style: { "background-color": "#e1ecfb", "border-color": "#3f7cc4" } },
    { selector: 'node[state = "Skipped"]', style: { "border-style": "dashed", opacity: 0.7 } },
    { selector: "node[?final]", style: { shape: "rectangle" } },
    {
      selector: "edge",
      style: {
        width: 2,
        "line-color": "#9aa4b2",
        "target-arrow-color": "#9aa4b2",
        "target-arrow-shape": "triangle",
        "curve-style": "bezier",
      },
    },
    { selector: 'edge[kind *= "result"]', style: { "line-style": "dashed" } },
    { selector: ":selected", style: { "overlay-color": "#3f7cc4", "overlay-opacity": 0.15, "overlay-padding": 6 } },
  ];

  function ensureGraph() {
    if (cy) return cy;
    if (typeof window.cytoscape !== "function") return null;
    cy = window.cytoscape({
      container: $("#run-graph"),
      style: GRAPH_STYLE,
      minZoom: 0.2,
      maxZoom: 1.3,
      boxSelectionEnabled: false,
    });
    window.amiRunGraph = cy;
    cy.on("tap", "node", (ev) => {
      const box = document.querySelector(`#run-tasks [data-task="${CSS.escape(ev.target.id())}"]`);
      if (box) box.scrollIntoView({ block: "nearest" });
    });
    return cy;
  }

  function nodeLabel(n) {
    const reason = n.reason && n.reason !== n.state ? `\n${n.reason}` : "";
    return `${n.finally ? "finally: " : ""}${n.name}\n${n.state}${reason}`;
  }

  function drawGraph(g, graph) {
    const wanted = new Map();
    for (const n of graph.nodes) {
      wanted.set(n.id, { group: "nodes", data: { id: n.id, label: nodeLabel(n), state: n.state, reason: n.reason, final: !!n.finally, taskRun: n.taskRun } });
    }
    for (const e of graph.edges) {
      wanted.set("edge:" + e.id, { group: "edges", data: { id: "edge:" + e.id, source: e.source, target: e.target, kind: e.kind } });
    }
    g.batch(() => {
      g.elements().forEach((ele) => {
        if (!wanted.has(ele.id())) ele.remove();
      });
      for (const [id, def] of wanted) {
        const existing = g.getElementById(id);
        if (existing.nonempty()) existing.data(def.data);
        else g.add(def);
      }
    });
    const key = [...wanted.keys()].sort().join("\n");
    if (key !== runs.graphKey) {
      runs.graphKey = key;
      layout(g);
    }
  }

  // Left to right in layers: a task one column after the last task it waits for, the
  // finally tasks in a column after all of them.
  function layout(g) {
    const depth = new Map();
    const depthOf = (n, seen) => {
      if (depth.has(n.id())) return depth.get(n.id());
      if (seen.has(n.id())) return 0; // a cycle cannot run; draw it anyway
      seen.add(n.id());
      const parents = n.incomers("node").toArray();
      const d = parents.length ? 1 + Math.max(...parents.map((p) => depthOf(p, seen))) : 0;
      depth.set(n.id(), d);
      return d;
    };
    const columns = [];
    const finals = [];
    g.nodes().forEach((n) => {
      if (n.data("final")) {
        finals.push(n);
        return;
      }
      const d = depthOf(n, new Set());
      (columns[d] = columns[d] || []).push(n);
    });
    columns.push(finals);
    columns.forEach((nodes, x) => {
      (nodes || []).forEach((n, y) => n.position({ x: x * 200, y: (y - (nodes.length - 1) / 2) * 70 }));
    });
    g.fit(undefined, 24);
  }

  // A task's TaskRun (a matrix task has one per combination), its steps and their logs.
  function taskSection(n) {
    const many = n.runs.length > 1;
    const runLink = (r) => el("a", { class: "muted taskrun", href: runHref("TaskRun", r.namespace, r.taskRun), text: r.taskRun });
    const body = n.runs.flatMap((r) => [
      many ? el("h4", {}, runLink(r), " ", stateChip(r.state, r.reason)) : null,
      r.message && r.state === "Failed" ? el("p", { class: "muted", text: r.message }) : null,
      ...r.steps.map((s) => stepBox(r, s)),
    ]);
    const empty = !n.runs.some((r) => r.steps.length);
    return el("section", { class: "run-task", dataset: { task: n.id, state: n.state } },
      el("h3", {}, `${n.finally ? "finally: " : ""}${n.name} `, stateChip(n.state, n.reason),
        n.runs.length === 1 ? runLink(n.runs[0]) : null),
      body,
      empty ? el("p", { class: "muted", text: n.state === "Skipped" ? "not run" : "no steps yet" }) : null);
  }

  // `r`: one of a task's runs (its TaskRun's name, namespace, steps).
  function stepBox(r, s) {
    const key = `${r.namespace}/${r.taskRun}/${s.name}`;
    let log = runs.logs.get(key);
    if (!log) {
      log = { pre: el("pre", { class: "log" }), offset: null, finished: false, reading: false };
      runs.logs.set(key, log);
    }
    const exit = s.exitCode === undefined || s.exitCode === null ? "" : ` exit ${s.exitCode}`;
    return el("div", { class: "run-step", dataset: { step: s.name, state: s.state } },
      el("div", { class: "step-head" },
        el("strong", { text: s.name }), " ", stateChip(s.state, s.reason),
        el("span", { class: "muted", text: `${exit} · ${s.image || "no image"} (runs on the host)` })),
      log.pre);
  }

  function showRun(graph) {
    const head = $("#run-head");
    show(head,
      el("h2", {}, `${graph.kind} ${graph.name} `, stateChip(graph.state, graph.reason)),
      el("p", { class: "muted" },
        graph.pipeline ? `pipeline ${graph.pipeline} · ` : "",
        `namespace ${graph.namespace} · started ${fmtTime(graph.startTime)} · `,
        `duration ${fmtDuration(graph.startTime, graph.completionTime)}`),
      graph.message ? el("p", { class: "muted", text: graph.message }) : null);
    const shape = JSON.stringify(graph.nodes.map((n) => [n.id, n.state, n.reason, n.runs.map((r) =>
      [r.taskRun, r.state, r.reason, r.message, r.steps.map((s) => [s.name, s.state, s.reason, s.exitCode])])]));
    if (shape !== runs.shape) {
      runs.shape = shape;
      // The log boxes move into the new sections as they are: their text stays.
      $("#run-tasks").replaceChildren(...graph.nodes.map(taskSection));
    }
  }

  async function readLog(key, log) {
    if (log.reading || log.finished) return;
    log.reading = true;
    try {
      const [ns, taskrun, step] = key.split("/");
      const path = `/api/v1/pipelines/logs/${encodeURIComponent(ns)}/${encodeURIComponent(taskrun)}/${encodeURIComponent(step)}`;
      const answer = await api(path, log.offset === null ? {} : { offset: log.offset });
      if (!answer) return;
      if (answer.skipped && log.offset !== null) log.pre.append(`… ${answer.skipped} bytes left out …\n`);
      if (answer.skipped && log.offset === null) log.pre.append(`… the first ${answer.skipped} bytes left out …\n`);
      if (answer.text) log.pre.append(answer.text);
      if (log.pre.textContent.length > MAX_LOG_CHARS) {
        log.pre.textContent = "…\n" + log.pre.textContent.slice(-MAX_LOG_CHARS);
      }
      log.offset = answer.offset;
      log.finished = !!answer.finished;
    } finally {
      log.reading = false;
    }
  }

  async function refreshRun() {
    const r = runs.run;
    if (!r) return;
    const graph = await api(`/api/v1/pipelines/graph/${r.kind}/${encodeURIComponent(r.namespace)}/${encodeURIComponent(r.name)}`);
    if (!graph) {
      show($("#run-head"), el("h2", { text: `${r.kind} ${r.name}` }), el("p", { class: "muted", text: "not found (yet): a run shows once its node agent reports it" }));
      return;
    }
    runs.graph = graph;
    showRun(graph);
    const g = ensureGraph();
    if (g) drawGraph(g, graph);
    const reads = [];
    for (const r of graph.nodes.flatMap((n) => n.runs)) {
      for (const s of r.steps) {
        if (s.state === "Pending") continue;
        const key = `${r.namespace}/${r.taskRun}/${s.name}`;
        const log = runs.logs.get(key);
        if (log) reads.push(readLog(key, log));
      }
    }
    await Promise.all(reads);
  }

  // Called by app.js's router: the run a `#run/KIND/NS/NAME` address names, or none.
  function open(hash) {
    const [kind, ns, name] = hash.split("/").slice(1).map(decodeURIComponent);
    const same = runs.run && runs.run.kind === kind && runs.run.namespace === ns && runs.run.name === name;
    if (same) return true;
    if (!["PipelineRun", "TaskRun"].includes(kind) || !ns || !name) return false;
    runs.run = { kind, namespace: ns, name };
    runs.graph = null;
    runs.graphKey = "";
    runs.shape = "";
    runs.logs.clear();
    show($("#run-head"));
    $("#run-tasks").replaceChildren();
    if (cy) cy.elements().remove();
    return true;
  }

  // While a run runs its page refreshes every second, the list too; a finished run's
  // page, with every log read to its end, no longer asks.
  function live() {
    const g = runs.graph;
    if (!runs.run) return true;
    if (!g || g.state === "Running" || g.state === "Pending") return true;
    for (const log of runs.logs.values()) if (!log.finished) return true;
    return false;
  }

  function resize() {
    if (cy) {
      cy.resize();
      if (runs.graphKey) layout(cy);
    }
  }

  return { refreshList, refreshRun, open, live, resize };
};
