// Ami dashboard: reads the control plane's JSON API (/api/v1/...) with the sign-in
// cookie and draws the service graph (cytoscape.js), golden metrics, traces, config,
// each proxy's xDS state, the Knative revisions' autoscaling and Tekton runs (runs.js). Plain JS, no build step; the CSP allows no inline code,
// so every node is built with DOM calls and every text goes in as text.
"use strict";

(function () {
  const REFRESH_MS = 5000;
  const RUNS_REFRESH_MS = 1000;
  const VIEWS = ["graph", "metrics", "traces", "config", "proxies", "runs", "run"];
  const XDS_TYPES = ["CDS", "EDS", "LDS", "RDS", "SDS"];

  const state = {
    view: "graph",
    windowS: 60,
    busy: false,
    again: false,
    signedOut: false,
    status: null,
    graph: null,
    graphKey: "",
    selected: null, // id of the graph element whose detail shows
    services: new Map(), // host -> service metrics
    workloads: new Map(), // "ns/name" -> workload metrics
    tracesLoaded: false,
    traceId: null,
    openSpans: new Set(),
    openResources: new Set(),
    resources: [],
  };

  // --- small helpers ------------------------------------------------------------------

  const $ = (sel) => document.querySelector(sel);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function num(v) {
    return v === null || v === undefined || Number.isNaN(Number(v)) ? null : Number(v);
  }

  function fmtMs(v) {
    v = num(v);
    if (v === null) return "-";
    if (v >= 1000) return (v / 1000).toFixed(v >= 10000 ? 1 : 2) + " s";
    if (v >= 100) return Math.round(v) + " ms";
    if (v >= 10) return v.toFixed(1) + " ms";
    return v.toFixed(2) + " ms";
  }

  function fmtRps(v) {
    v = num(v);
    if (v === null) return "-";
    if (v === 0) return "0";
    if (v < 10) return v.toFixed(2);
    return v.toFixed(1);
  }

  function fmtPct(v) {
    v = num(v);
    if (v === null) return "-";
    const p = v * 100;
    if (p === 100 || p === 0) return p.toFixed(0) + "%";
    return p.toFixed(p >= 99 || p < 1 ? 2 : 1) + "%";
  }

  function rateClass(successRate) {
    const v = num(successRate);
    if (v === null) return "";
    if (v >= 0.99) return "rate-ok";
    if (v >= 0.95) return "rate-warn";
    return "rate-bad";
  }

  // Seconds, milliseconds, microseconds or nanoseconds since the epoch, or a date string.
  function toDate(v) {
    if (v === null || v === undefined) return null;
    if (typeof v === "string" && !/^\d+(\.\d+)?$/.test(v)) {
      const t = Date.parse(v);
      return Number.isNaN(t) ? null : new Date(t);
    }
    let n = Number(v);
    if (n > 1e17) n /= 1e6;
    else if (n > 1e14) n /= 1e3;
    else if (n < 1e11) n *= 1e3;
    return new Date(n);
  }

  function fmtTime(v) {
    const d = toDate(v);
    if (!d) return "-";
    const pad = (x, n = 2) => String(x).padStart(n, "0");
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  }

  function fmtAge(since) {
    const s = num(since);
    if (s === null || s <= 0) return "-";
    const secs = Math.max(0, Date.now() / 1000 - s);
    if (secs < 120) return Math.round(secs) + "s";
    if (secs < 7200) return Math.round(secs / 60) + "m";
    if (secs < 172800) return Math.round(secs / 3600) + "h";
    return Math.round(secs / 86400) + "d";
  }

  // Replace a box's content, unless it would look the same: a refresh then keeps the
  // reader's text selection and the open details.
  function show(box, ...nodes) {
    const holder = document.createElement("div");
    for (const n of nodes.flat()) {
      if (n === null || n === undefined || n === false) continue;
      holder.append(n instanceof Node ? n : document.createTextNode(String(n)));
    }
    if (holder.innerHTML === box.innerHTML) return;
    box.replaceChildren(...holder.childNodes);
  }

  function chip(text, cls) {
    return el("span", { class: `chip ${cls || text}`, text });
  }

  function cell(content, cls) {
    return el("td", { class: cls }, content);
  }

  function fill(tbody, rows, columns, emptyText) {
    if (!rows.length) {
      show(tbody, el("tr", {}, el("td", { class: "empty", colspan: columns, text: emptyText })));
    } else {
      show(tbody, ...rows);
    }
  }

  // --- the API --------------------------------------------------------------------------

  class SignedOut extends Error {}

  // The JSON answer; null when the endpoint does not exist on this control plane.
  async function api(path, params) {
    const url = new URL(path, window.location.origin);
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, v);
    }
    let response;
    try {
      response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    } catch (err) {
      throw new Error(`the control plane does not answer (${err.message}); retrying`);
    }
    if (response.status === 401) throw new SignedOut();
    if (response.status === 404 && !path.startsWith("/api/v1/traces/")) return null;
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = null;
    }
    if (!response.ok) {
      const msg = body && (body.error || (body.errors || []).join("; "));
      throw new Error(`${path}: ${msg || "HTTP " + response.status}`);
    }
    return body;
  }

  function notice(text, kind) {
    const box = $("#notice");
    if (!text) {
      box.hidden = true;
      return;
    }
    box.className = "notice" + (kind ? " " + kind : "");
    show(box, ...(Array.isArray(text) ? text : [text]));
    box.hidden = false;
  }

  function signedOut() {
    state.signedOut = true;
    notice(
      [
        "Not signed in (or the mesh restarted with a new token). Run ",
        el("code", { text: "ami dashboard" }),
        " to open the dashboard again.",
      ],
      "error",
    );
  }

  // --- Tekton runs (runs.js) -----------------------------------------------------------

  const runsView = window.amiRuns({ $, el, show, fill, chip, api, fmtTime });

  // --- refresh loop ---------------------------------------------------------------------

  const refreshers = {
    runs: () => runsView.refreshList(),
    run: () => runsView.refreshRun(),
    graph: refreshGraph,
    metrics: refreshMetrics,
    traces: refreshTraces,
    config: refreshConfig,
    proxies: refreshProxies,
  };

  async function refresh() {
    if (state.signedOut) return;
    if (state.busy) {
      // A view changed during a refresh: refresh again as soon as it ends.
      state.again = true;
      return;
    }
    state.busy = true;
    state.again = false;
    try {
      await Promise.all([refreshSummary(), refreshers[state.view]()]);
      $("#updated").textContent = "updated " + fmtTime(Date.now());
      notice(null);
    } catch (err) {
      if (err instanceof SignedOut) signedOut();
      else notice(err.message, "error");
    } finally {
      state.busy = false;
    }
    if (state.again) refresh();
  }

  async function refreshSummary() {
    const status = await api("/api/v1/status");
    state.status = status;
    const box = $("#summary");
    if (!status) {
      show(box);
      return;
    }
    const instances = status.instances || [];
    const ready = instances.filter((i) => i.ready).length;
    const errors = (status.config_errors || []).length;
    show(box,
      el("span", { text: `${ready}/${instances.length} instances ready` }),
      el("span", { text: `${(status.proxies || []).length} proxies` }),
      el("span", { class: status.synced ? "ok" : "", text: status.synced ? "config synced" : "config syncing…" }),
      el("span", { class: errors ? "bad" : "", text: `${errors} config error${errors === 1 ? "" : "s"}` }),
      el("span", { text: `${status.resources} resources` }),
    );
  }

  // --- graph ----------------------------------------------------------------------------

  let cy = null;

  const GRAPH_STYLE = [
    {
      selector: "node",
      style: {
        label: "data(label)",
        "font-size": 11,
        color: "#1d2430",
        "text-valign": "bottom",
        "text-margin-y": 5,
        "text-wrap": "wrap",
        "text-max-width": 150,
        "border-width": 2,
        width: 34,
        height: 34,
      },
    },
    {
      selector: 'node[kind = "workload"]',
      style: {
        shape: "round-rectangle",
        width: 46,
        height: 30,
        "background-color": "#dcecff",
        "border-color": "#3f7cc4",
      },
    },
    {
      selector: 'node[kind = "service"]',
      style: { shape: "ellipse", "background-color": "#fff1d6", "border-color": "#c48a1c" },
    },
    {
      // A Knative Broker: events come from its ingress service, go by its triggers.
      selector: 'node[kind = "broker"]',
      style: { shape: "hexagon", width: 40, height: 36, "background-color": "#efe6ff", "border-color": "#7b4fc4" },
    },
    { selector: "node.gateway", style: { shape: "diamond", width: 44, height: 44 } },
    { selector: "node.errors", style: { "border-color": "#d0453b", "border-width": 3 } },
    { selector: "node.idle", style: { opacity: 0.55 } },
    {
      selector: "edge",
      style: {
        width: "data(width)",
        "line-color": "data(color)",
        "target-arrow-color": "data(color)",
        "target-arrow-shape": "triangle",
        "curve-style": "bezier",
        label: "data(label)",
        "font-size": 9,
        color: "#4a5566",
        "text-rotation": "autorotate",
        "text-background-color": "#ffffff",
        "text-background-opacity": 0.85,
        "text-background-padding": 2,
      },
    },
    { selector: "edge[!mtls]", style: { "line-style": "dashed" } },
    {
      selector: 'edge[kind = "broker"]',
      style: { "line-color": "#b9a3e0", "target-arrow-color": "#b9a3e0", width: 1.5 },
    },
    {
      selector: 'edge[kind = "trigger"]',
      style: { "line-color": "#7b4fc4", "target-arrow-color": "#7b4fc4", "source-arrow-shape": "circle", "source-arrow-color": "#7b4fc4" },
    },
    { selector: 'edge[kind = "trigger"][!ready]', style: { "line-style": "dotted" } },
    {
      selector: ":selected",
      style: { "overlay-color": "#3f7cc4", "overlay-opacity": 0.15, "overlay-padding": 6 },
    },
  ];

  function ensureGraph() {
    if (cy) return cy;
    if (typeof window.cytoscape !== "function") {
      show($("#graph"),
        el(
          "p",
          { class: "muted" },
          "cytoscape.js is missing from the dashboard's static/vendor/: run ",
          el("code", { text: "python tools/vendor_js.py" }),
          " (make venv does).",
        ),
      );
      return null;
    }
    cy = window.cytoscape({
      container: $("#graph"),
      style: GRAPH_STYLE,
      minZoom: 0.2,
      maxZoom: 3,
      boxSelectionEnabled: false,
    });
    window.amiGraph = cy;
    cy.on("tap", "node, edge", (ev) => {
      state.selected = ev.target.id();
      showDetail();
    });
    cy.on("tap", (ev) => {
      if (ev.target === cy) {
        state.selected = null;
        showDetail();
      }
    });
    return cy;
  }

  function nodeLabel(n) {
    const ns = n.namespace && n.namespace !== "default" ? "." + n.namespace : "";
    return (n.name || n.id) + ns;
  }

  function edgeColor(e) {
    if (!e.requests) return "#9aa4b2";
    if (!e.error_rate) return "#2e9d58";
    return e.error_rate < 0.05 ? "#d08a00" : "#d0453b";
  }

  function edgeLabel(e) {
    if (e.kind === "broker") return "";
    const parts = [`${fmtRps(e.rps)} rps`];
    if (e.kind === "trigger") parts.unshift((e.triggers || []).join(", "));
    if (e.requests) parts.push(`${fmtPct(e.error_rate)} err`);
    if (e.p99_ms !== null && e.p99_ms !== undefined) parts.push(`p99 ${fmtMs(e.p99_ms)}`);
    return parts.join(" · ");
  }

  function edgeId(e) {
    return `${e.source}->${e.target}|${e.kind || e.protocol || ""}`;
  }

  async function refreshGraph() {
    const [graph] = await Promise.all([
      api("/api/v1/graph", { window: state.windowS }),
      refreshMetricsData(),
    ]);
    const note = $("#graph-note");
    if (!graph) {
      note.textContent = "this control plane serves no service graph";
      return;
    }
    state.graph = graph;
    note.textContent = `edges: requests over the last ${graph.window_s || state.windowS}s`;
    const g = ensureGraph();
    if (!g) return;
    drawGraph(g, graph);
    showDetail();
  }

  function drawGraph(g, graph) {
    const nodes = graph.nodes || [];
    const edges = (graph.edges || []).filter((e) => e.source && e.target);
    const ids = new Set(nodes.map((n) => n.id));
    // An edge may name a node the answer did not list; draw it anyway.
    for (const e of edges) {
      for (const id of [e.source, e.target]) {
        if (!ids.has(id)) {
          ids.add(id);
          const [kind, rest] = id.includes(":") ? id.split(/:(.*)/s) : ["workload", id];
          nodes.push({ id, kind, name: rest });
        }
      }
    }
    const linked = new Set();
    const erroring = new Set();
    for (const e of edges) {
      if (e.requests) {
        linked.add(e.source);
        linked.add(e.target);
      }
      if (e.requests && e.error_rate >= 0.05) erroring.add(e.target);
    }
    const wanted = new Map();
    for (const n of nodes) {
      const classes = [];
      if (/gateway/i.test(n.name || "") || /gateway/i.test(n.app || "")) classes.push("gateway");
      if (!linked.has(n.id)) classes.push("idle");
      if (erroring.has(n.id)) classes.push("errors");
      wanted.set(n.id, { group: "nodes", data: { ...n, label: nodeLabel(n) }, classes: classes.join(" ") });
    }
    for (const e of edges) {
      const id = edgeId(e);
      const width = 1.5 + Math.min(4.5, Math.log2(1 + (num(e.rps) || 0)));
      wanted.set(id, {
        group: "edges",
        data: { ...e, id, label: edgeLabel(e), color: edgeColor(e), width, mtls: !!e.mtls },
      });
    }
    const key = [...wanted.keys()].sort().join("\n");
    g.batch(() => {
      g.elements().forEach((ele) => {
        if (!wanted.has(ele.id())) ele.remove();
      });
      for (const [id, def] of wanted) {
        const existing = g.getElementById(id);
        if (existing.nonempty()) {
          existing.data(def.data);
          if (def.group === "nodes") existing.classes(def.classes);
        } else {
          g.add(def);
        }
      }
    });
    if (key !== state.graphKey) {
      state.graphKey = key;
      layout(g);
    }
  }

  function layout(g) {
    if (g.elements().empty()) return;
    const starts = g.nodes().filter((n) => n.indegree(false) === 0 && n.outdegree(false) > 0);
    g.layout({
      name: "breadthfirst",
      directed: true,
      roots: starts.nonempty() ? starts : undefined,
      spacingFactor: 1.15,
      padding: 30,
      animate: false,
      // Left to right: callers on the left, callees to their right.
      transform: (node, pos) => ({ x: pos.y * 2.2, y: pos.x * 0.8 }),
    }).run();
    g.fit(undefined, 30);
  }

  function dl(pairs) {
    return el(
      "dl",
      {},
      pairs.filter(([, v]) => v !== undefined).flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v === null ? "-" : v)]),
    );
  }

  function metricsPairs(m) {
    if (!m) return [["metrics", "no requests in the window"]];
    return [
      ["success", el("span", { class: rateClass(m.success_rate), text: fmtPct(m.success_rate) })],
      ["rps", fmtRps(m.rps)],
      ["requests", String(m.requests)],
      ["p50", fmtMs(m.p50_ms)],
      ["p95", fmtMs(m.p95_ms)],
      ["p99", fmtMs(m.p99_ms)],
    ];
  }

  function showDetail() {
    const box = $("#graph-detail");
    const ele = cy && state.selected ? cy.getElementById(state.selected) : null;
    if (!ele || ele.empty()) {
      show(box, el("p", { class: "muted", text: "Click a node or an edge for its figures." }));
      return;
    }
    const d = ele.data();
    if (ele.isEdge()) {
      const src = cy.getElementById(d.source).data("label") || d.source;
      const dst = cy.getElementById(d.target).data("label") || d.target;
      const triggers = d.kind === "trigger"
        ? [["triggers", (d.triggers || []).join(", ")], ["ready", d.ready ? "yes" : "no"]]
        : [];
      show(box,
        el("h3", { text: `${src} → ${dst}` }),
        dl([
          ...triggers,
          ["protocol", d.protocol || "-"],
          ["mTLS", d.mtls ? "yes (mutual TLS)" : "no (plain text)"],
          ["rps", fmtRps(d.rps)],
          ["requests", String(d.requests)],
          ["error rate", el("span", { class: rateClass(1 - (d.error_rate || 0)), text: fmtPct(d.error_rate) })],
          ["p99", fmtMs(d.p99_ms)],
        ]),
      );
      return;
    }
    const pairs = [["kind", d.kind], ["namespace", d.namespace || "-"]];
    let metrics;
    let traceService = null;
    if (d.kind === "broker") {
      pairs.push(
        ["address", d.url || "-"],
        ["ready", d.ready ? "yes" : "no"],
        ["triggers", (d.triggers || []).join(", ") || "none"],
        ["delivers as", d.identity || "-"],
      );
      traceService = "broker-ingress";
    } else if (d.kind === "service") {
      pairs.push(["host", d.host || "-"]);
      metrics = state.services.get(d.host);
      traceService = d.name;
    } else {
      pairs.push(["app", d.app || "-"], ["version", d.version || "-"]);
      metrics = state.workloads.get(`${d.namespace}/${d.name}`);
      // Spans name their workload's app label (a gateway: its workload).
      traceService = d.app && d.app !== "unknown" ? d.app : d.name;
    }
    const around = (edges, end) =>
      edges.map((e) => el("li", {}, `${cy.getElementById(e.data(end)).data("label")}: ${fmtRps(e.data("rps"))} rps`));
    const incoming = around(ele.incomers("edge").toArray(), "source");
    const outgoing = around(ele.outgoers("edge").toArray(), "target");
    show(box,
      el("h3", { text: d.label }),
      dl(pairs),
      el("h4", { text: `Golden metrics (${state.windowS}s)` }),
      dl(metricsPairs(metrics)),
      incoming.length ? el("div", {}, el("strong", { text: "from" }), el("ul", {}, incoming)) : null,
      outgoing.length ? el("div", {}, el("strong", { text: "to" }), el("ul", {}, outgoing)) : null,
      el("p", {}, el("a", { href: "#traces?service=" + encodeURIComponent(traceService), text: "traces →" })),
    );
  }

  // --- metrics --------------------------------------------------------------------------

  async function refreshMetricsData() {
    const [services, workloads] = await Promise.all([
      api("/api/v1/metrics/services", { window: state.windowS }),
      api("/api/v1/metrics/workloads", { window: state.windowS }),
    ]);
    state.services = new Map(((services && services.services) || []).map((s) => [s.host, s]));
    state.workloads = new Map(((workloads && workloads.workloads) || []).map((w) => [`${w.namespace}/${w.name}`, w]));
    return { services, workloads };
  }

  function latencyCells(m) {
    return [cell(fmtMs(m.p50_ms), "num"), cell(fmtMs(m.p95_ms), "num"), cell(fmtMs(m.p99_ms), "num")];
  }

  async function refreshMetrics() {
    const { services, workloads } = await refreshMetricsData();
    const byName = (a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`);
    const svcRows = ((services && services.services) || []).slice().sort(byName).map((s) =>
      el(
        "tr",
        { dataset: { host: s.host } },
        el("td", { title: s.host }, s.name),
        cell(s.namespace),
        el("td", { class: "num " + rateClass(s.success_rate), text: fmtPct(s.success_rate) }),
        cell(fmtRps(s.rps), "num"),
        ...latencyCells(s),
        cell(String(s.requests), "num"),
        el("td", {}, el("a", { href: "#traces?service=" + encodeURIComponent(s.name), text: "traces" })),
      ),
    );
    fill(
      $("#services-table tbody"),
      svcRows,
      9,
      services ? "no requests to any service in the window" : "this control plane serves no metrics",
    );
    const wlRows = ((workloads && workloads.workloads) || []).slice().sort(byName).map((w) =>
      el(
        "tr",
        {},
        cell(w.name),
        cell(w.namespace),
        cell(w.app || "-"),
        cell(w.version || "-"),
        el("td", { class: "num " + rateClass(w.success_rate), text: fmtPct(w.success_rate) }),
        cell(fmtRps(w.rps), "num"),
        ...latencyCells(w),
        cell(String(w.requests), "num"),
      ),
    );
    fill(
      $("#workloads-table tbody"),
      wlRows,
      10,
      workloads ? "no requests to any workload in the window" : "this control plane serves no metrics",
    );
  }

  // --- traces ---------------------------------------------------------------------------

  function searchParams() {
    const form = $("#trace-search");
    return {
      service: form.elements.service.value.trim(),
      min_duration_ms: form.elements.min_duration_ms.value.trim(),
      limit: form.elements.limit.value,
    };
  }

  async function refreshTraces() {
    // Search results stay put while being read: they change on a search only.
    if (!state.tracesLoaded) await searchTraces();
    if (state.traceId) await showTrace(state.traceId);
  }

  async function searchTraces() {
    state.tracesLoaded = true;
    const body = await api("/api/v1/traces", searchParams());
    const tbody = $("#traces-table tbody");
    if (!body) {
      fill(tbody, [], 6, "this control plane serves no traces");
      return;
    }
    const traces = body.traces || [];
    const seen = new Set();
    const rows = traces.map((t) => {
      (t.services || []).forEach((s) => seen.add(s));
      if (t.root_service) seen.add(t.root_service);
      return el(
        "tr",
        {
          class: t.trace_id === state.traceId ? "selected" : "",
          dataset: { traceId: t.trace_id },
          onclick: () => {
            window.location.hash = "#trace/" + encodeURIComponent(t.trace_id);
          },
        },
        cell(fmtTime(t.start)),
        el("td", {}, el("strong", { text: t.root_service || "?" }), " ", t.root_name || ""),
        cell(fmtMs(t.duration_ms), "num"),
        cell(String(t.span_count), "num"),
        cell((t.services || []).join(", ")),
        el("td", {}, t.error ? chip("error") : null),
      );
    });
    fill(tbody, rows, 6, "no traces match (is tracing sampled? see docs/observability.md)");
    const list = $("#trace-services");
    const known = new Set([...list.options].map((o) => o.value));
    for (const s of [...seen].sort()) if (!known.has(s)) list.append(el("option", { value: s }));
  }

  // [start, end] in ns since the epoch. A double holds those to about 256 ns: the
  // duration the API gives is exact, so the end comes from it when it can.
  function spanTimes(s) {
    const start = num(s.start_unix_nano);
    const duration = num(s.duration_ms);
    let end = num(s.end_unix_nano);
    if (start !== null && duration !== null) end = start + duration * 1e6;
    return [start, end];
  }

  // Spans in tree order (each after its parent, siblings by start), with their depth.
  function spanTree(spans) {
    const byId = new Map(spans.map((s) => [s.span_id, s]));
    const children = new Map();
    const roots = [];
    for (const s of spans) {
      const parent = s.parent_span_id;
      if (parent && byId.has(parent) && parent !== s.span_id) {
        if (!children.has(parent)) children.set(parent, []);
        children.get(parent).push(s);
      } else {
        roots.push(s);
      }
    }
    const byStart = (a, b) => (spanTimes(a)[0] || 0) - (spanTimes(b)[0] || 0);
    const out = [];
    const visited = new Set();
    const walk = (s, depth) => {
      if (visited.has(s.span_id)) return;
      visited.add(s.span_id);
      out.push([s, depth]);
      for (const c of (children.get(s.span_id) || []).sort(byStart)) walk(c, depth + 1);
    };
    roots.sort(byStart).forEach((r) => walk(r, 0));
    return out;
  }

  async function showTrace(traceId) {
    const box = $("#trace-detail");
    box.hidden = false;
    const trace = await api("/api/v1/traces/" + encodeURIComponent(traceId)).catch((err) => {
      if (err instanceof SignedOut) throw err;
      show(box, el("p", { class: "muted", text: `trace ${traceId}: ${err.message}` }));
      return null;
    });
    if (!trace) return;
    for (const row of document.querySelectorAll("#traces-table tbody tr")) {
      row.classList.toggle("selected", row.dataset.traceId === traceId);
    }
    const spans = trace.spans || [];
    let t0 = Infinity;
    let t1 = -Infinity;
    for (const s of spans) {
      const [a, b] = spanTimes(s);
      if (a !== null) t0 = Math.min(t0, a);
      if (b !== null) t1 = Math.max(t1, b);
    }
    const total = t1 > t0 ? t1 - t0 : 1;
    const services = [...new Set(spans.map((s) => s.service).filter(Boolean))];
    const rows = [];
    for (const [s, depth] of spanTree(spans)) {
      const [a, b] = spanTimes(s);
      const left = a === null ? 0 : ((a - t0) / total) * 100;
      const width = a === null || b === null ? 0 : ((b - a) / total) * 100;
      const isError = String(s.status || "").toUpperCase().includes("ERROR");
      const name = el("div", { class: "span-name", title: `${s.service}: ${s.name}` },
        el("span", { class: "svc", text: s.service || "?" }), s.name || "");
      name.style.paddingLeft = 6 + depth * 14 + "px";
      const bar = el("div", { class: `span-bar ${isError ? "error" : ""} ${String(s.kind || "").toLowerCase().includes("server") ? "server" : ""}` });
      bar.style.left = left + "%";
      bar.style.width = Math.max(width, 0.2) + "%";
      // The duration after the bar; inside it near the end, or before a short one there.
      const label = el("span", { class: "span-time", text: fmtMs(s.duration_ms) });
      if (left + width <= 80) {
        label.style.left = left + width + 0.5 + "%";
      } else if (width >= 12) {
        label.classList.add("inside");
        label.style.right = 100 - left - width + 0.5 + "%";
      } else {
        label.style.right = 100 - left + 0.5 + "%";
      }
      const row = el("div", {
        class: "span-row" + (state.openSpans.has(s.span_id) ? " selected" : ""),
        dataset: { spanId: s.span_id },
        onclick: () => {
          if (state.openSpans.has(s.span_id)) state.openSpans.delete(s.span_id);
          else state.openSpans.add(s.span_id);
          showTrace(traceId).catch((err) => notice(err.message, "error"));
        },
      }, name, el("div", { class: "span-track" }, bar, label));
      rows.push(row);
      if (state.openSpans.has(s.span_id)) {
        const attrs = Object.entries(s.attributes || {}).sort(([x], [y]) => x.localeCompare(y));
        const details = el("div", { class: "span-attrs" }, dl([
          ["service", s.service],
          ["kind", s.kind],
          ["status", s.status],
          ["span id", s.span_id],
          ["parent", s.parent_span_id || "-"],
          ["start", a === null ? "-" : `+${fmtMs((a - t0) / 1e6)}`],
          ["duration", fmtMs(s.duration_ms)],
          ...attrs.map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]),
        ]));
        details.addEventListener("click", (ev) => ev.stopPropagation());
        row.append(details);
      }
    }
    const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => el("span", { text: fmtMs((total * f) / 1e6) }));
    show(box,
      el("div", { class: "trace-head" },
        el("h3", { text: `Trace ${trace.trace_id}` }),
        el("span", { text: `${fmtMs(total / 1e6)} · ${spans.length} spans · ${services.join(", ")}` }),
        el("a", { href: "#traces", text: "close" })),
      el("div", { class: "waterfall", id: "waterfall" },
        el("div", { class: "axis" }, el("span"), el("div", { class: "ticks" }, ticks)),
        rows.length ? rows : el("p", { class: "muted", text: "this trace has no spans (yet)" })),
    );
  }

  // --- config ---------------------------------------------------------------------------

  async function refreshConfig() {
    const [analysis, resources] = await Promise.all([api("/api/v1/analyze"), api("/api/v1/resources")]);
    const status = state.status || (await api("/api/v1/status"));
    const errors = (status && status.config_errors) || [];
    show($("#config-errors"),
      errors.length
        ? el("div", {},
            el("p", { class: "muted", text: "The last good config of each file is served." }),
            el("ul", { class: "errors" }, errors.map((e) => el("li", { text: e }))))
        : el("p", { class: "none", text: "none: every config file is valid" }),
    );
    const findings = (analysis && analysis.findings) || [];
    fill(
      $("#findings-table tbody"),
      findings.map((f) =>
        el("tr", {},
          el("td", {}, chip(f.severity)),
          cell(f.code),
          cell(f.resource),
          cell(f.field || "-"),
          el("td", {}, f.message, f.hint ? el("div", { class: "muted", text: "hint: " + f.hint }) : null),
          cell(f.source || "-"))),
      6,
      analysis ? "no findings" : "this control plane serves no analysis",
    );
    state.resources = (resources && resources.items) || [];
    renderResources();
  }

  function resourceKey(r) {
    return `${r.apiVersion}/${r.kind}/${(r.metadata || {}).namespace}/${(r.metadata || {}).name}`;
  }

  // A kind's name, with its API group when another group's kind has the same name
  // (a Knative Service beside a Kubernetes Service): `Service.serving.knative.dev`.
  function kindLabels(resources) {
    const groups = new Map();
    for (const r of resources) {
      const group = String(r.apiVersion || "").includes("/") ? r.apiVersion.split("/")[0] : "";
      if (!groups.has(r.kind)) groups.set(r.kind, new Set());
      groups.get(r.kind).add(group);
    }
    return (r) => {
      const group = String(r.apiVersion || "").includes("/") ? r.apiVersion.split("/")[0] : "";
      return group && groups.get(r.kind).size > 1 ? `${r.kind}.${group}` : r.kind;
    };
  }

  function renderResources() {
    const filter = $("#resource-filter").value.trim().toLowerCase();
    const rows = [];
    const kindOf = kindLabels(state.resources);
    for (const r of state.resources) {
      const meta = r.metadata || {};
      const key = resourceKey(r);
      const kind = kindOf(r);
      const text = `${kind} ${meta.namespace} ${meta.name} ${r.source || ""}`.toLowerCase();
      if (filter && !filter.split(/\s+/).every((w) => text.includes(w))) continue;
      const open = state.openResources.has(key);
      rows.push(
        el("tr", {
          class: open ? "selected" : "",
          onclick: () => {
            if (open) state.openResources.delete(key);
            else state.openResources.add(key);
            renderResources();
          },
        }, cell(kind), cell(meta.namespace), cell(meta.name), cell(r.source || "-")),
      );
      if (open) {
        const { source, ...doc } = r;
        rows.push(el("tr", {}, el("td", { colspan: 4 }, el("pre", { text: JSON.stringify(doc, null, 2) }))));
      }
    }
    fill($("#resources-table tbody"), rows, 4, filter ? "nothing matches the filter" : "no resources");
  }

  // --- proxies --------------------------------------------------------------------------

  async function refreshProxies() {
    const body = await api("/api/v1/proxies");
    const proxies = ((body && body.proxies) || []).slice().sort((a, b) => a.id.localeCompare(b.id));
    const nacks = [];
    fill(
      $("#proxies-table tbody"),
      proxies.map((p) => {
        const types = p.types || {};
        for (const t of XDS_TYPES) {
          const n = types[t] && types[t].last_nack;
          if (types[t] && types[t].state === "NACK" && n) {
            nacks.push(`${p.id} ${t} NACK version ${n.version}: ${n.message}`);
          }
        }
        return el("tr", { class: p.synced ? "" : "unsynced" },
          cell(p.id),
          cell(p.workload ? `${p.workload}.${p.namespace}` : "-"),
          cell(p.kind || "-"),
          cell(p.mode),
          ...XDS_TYPES.map((t) => el("td", {}, types[t] ? chip(types[t].state, types[t].state.replace(/\s+/g, "-")) : "-")),
          cell(p.admin_port ? String(p.admin_port) : "-", "num"),
          cell(fmtAge(p.connected_since)));
      }),
      11,
      "no proxy is connected",
    );
    show($("#nacks"),
      nacks.length ? el("ul", { class: "errors" }, nacks.map((n) => el("li", { text: n }))) : "",
    );
    const status = state.status || (await api("/api/v1/status"));
    const instances = (status && status.instances) || [];
    fill(
      $("#instances-table tbody"),
      instances.map((i) =>
        el("tr", {},
          cell(i.workload),
          cell(i.namespace),
          cell(i.instance),
          el("td", { title: i.reason || "" }, chip(i.state)),
          el("td", {}, chip(i.ready ? "yes" : "no")),
          cell(String(i.restarts ?? "-"), "num"),
          cell(i.pid ? String(i.pid) : "-", "num"),
          cell(fmtAge(i.since)))),
      8,
      "no instances",
    );
    await refreshRevisions();
  }

  // Knative revisions as their autoscaler sees them; the section shows when there are any.
  async function refreshRevisions() {
    const body = await api("/api/v1/serving/revisions");
    const revisions = (body && body.revisions) || [];
    $("#revisions-section").hidden = !revisions.length;
    const load = (r) => {
      const v = num(r.observed_stable);
      if (v === null) return "-";
      return v.toFixed(2) + (r.metric === "rps" ? " rps" : "");
    };
    fill(
      $("#revisions-table tbody"),
      revisions.map((r) =>
        el("tr", { dataset: { revision: `${r.namespace}/${r.revision}` } },
          cell(r.namespace),
          el("td", { title: `${r.active || "not scaled yet"}; target ${r.target ?? "-"} per instance` }, r.revision),
          cell(r.service || "-"),
          cell(r.requested === null || r.requested === undefined ? "-" : String(r.requested), "num"),
          cell(String(r.ready), "num"),
          cell(load(r), "num"),
          el("td", {}, r.desired === null || r.desired === undefined ? "-" : r.panic ? chip("yes", "panic") : "no"),
          el("td", {}, r.activator ? chip("yes", "activator") : "no"))),
      8,
      "no Knative revisions",
    );
  }

  // --- navigation -----------------------------------------------------------------------

  function route() {
    const hash = window.location.hash.replace(/^#/, "");
    let view = hash.split(/[/?]/)[0] || "graph";
    state.traceId = null;
    if (view === "trace") {
      view = "traces";
      state.traceId = decodeURIComponent(hash.slice("trace/".length)) || null;
    }
    if (view === "run" && !runsView.open(hash)) view = "runs";
    if (!VIEWS.includes(view)) view = "graph";
    if (view === "traces" && hash.startsWith("traces?")) {
      const params = new URLSearchParams(hash.slice("traces?".length));
      const form = $("#trace-search");
      form.elements.service.value = params.get("service") || "";
      form.elements.min_duration_ms.value = params.get("min_duration_ms") || "";
      state.tracesLoaded = false;
    }
    if (view === "traces" && !state.traceId) {
      $("#trace-detail").hidden = true;
      state.openSpans.clear();
    }
    // Coming back to the traces, search again: the list shows the newest then.
    if (view === "traces" && state.view !== "traces") state.tracesLoaded = false;
    state.view = view;
    for (const v of VIEWS) $("#view-" + v).hidden = v !== view;
    const navView = view === "run" ? "runs" : view;
    for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.view === navView);
    if (view === "graph" && cy) cy.resize();
    if (view === "run") runsView.resize();
    refresh();
  }

  function start() {
    $("#window").addEventListener("change", (ev) => {
      state.windowS = Number(ev.target.value) || 60;
      refresh();
    });
    $("#trace-search").addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (state.traceId) window.location.hash = "#traces";
      searchTraces().catch((err) => {
        if (err instanceof SignedOut) signedOut();
        else notice(err.message, "error");
      });
    });
    $("#resource-filter").addEventListener("input", renderResources);
    window.addEventListener("hashchange", route);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) refresh();
    });
    setInterval(() => {
      if (!document.hidden) refresh();
    }, REFRESH_MS);
    // Runs change by the second and their logs by the line: those views ask more often.
    setInterval(() => {
      if (document.hidden || !(state.view === "runs" || state.view === "run")) return;
      if (state.view === "run" && !runsView.live()) return;
      refresh();
    }, RUNS_REFRESH_MS);
    route();
  }

  start();
})();
