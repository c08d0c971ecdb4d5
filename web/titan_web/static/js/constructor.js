/* Titan console, Constructor: the App, its model on the canvas (Cytoscape + edgehandles) and
 * the page's events. The form and the checks' display are constructor-form.js's (methods of
 * the same App, window.TitanApp); server calls (the YAML and Python panes, uploads, drafts,
 * loading, deploy) are constructor-io.js's, bound at start through window.TitanIO.
 *
 * The model is the truth (constructor-model.js); the canvas shows it. Edges go from a parent
 * to the job that waits for it. Every change re-checks the model here at once, keeps it in
 * localStorage, and asks the console (debounced) for the YAML, the Python and its verdict.
 * #constructor's data-check says where the checks stand: "pending", "ok" or "problems".
 */
(function () {
  "use strict";

  const M = window.TitanModel;
  const STORE = "titan.constructor.v1";
  const COLORS = { run: ["#eef4fd", "#1c5fc7"], service: ["#e6f6f8", "#0b7285"], gate: ["#f1ecfe", "#6741d9"] };
  const $ = function (id) { return document.getElementById(id); };

  function style() {
    const s = [
      { selector: "node", style: {
        shape: "round-rectangle", height: 50, "text-wrap": "wrap", "text-valign": "center",
        "text-halign": "center", "font-size": 13, "font-family": "system-ui, sans-serif",
        color: "#1d2733", "line-height": 1.35, "border-width": 2 } },
      // edgehandles' ghost node has no data: map data only where it is
      { selector: "node[w]", style: { width: "data(w)" } },
      { selector: "node[label]", style: { label: "data(label)" } },
      { selector: "node.kind-service", style: { shape: "barrel", "border-style": "double", "border-width": 4 } },
      { selector: "node.kind-gate", style: { shape: "round-hexagon", height: 58 } },
      { selector: "edge", style: {
        width: 2, "curve-style": "bezier", "line-color": "#8a96a3",
        "target-arrow-color": "#8a96a3", "target-arrow-shape": "triangle", "arrow-scale": 1.1 } },
      { selector: "edge.back", style: {
        "curve-style": "unbundled-bezier", "control-point-distances": 70, "control-point-weights": 0.5 } },
      { selector: "node.bad", style: { "border-color": "#b42318", "border-style": "dashed" } },
      { selector: "edge.bad", style: { "line-color": "#b42318", "target-arrow-color": "#b42318", "line-style": "dashed" } },
      { selector: "node:selected", style: { "border-color": "#f59f00", "border-width": 4, "border-style": "solid" } },
      { selector: "edge:selected", style: { "line-color": "#f59f00", "target-arrow-color": "#f59f00", width: 3 } },
      { selector: ".eh-source, .eh-target", style: { "border-color": "#f59f00", "border-width": 4 } },
      { selector: ".eh-preview, .eh-ghost-edge", style: {
        "line-color": "#f59f00", "target-arrow-color": "#f59f00", "line-style": "dashed", width: 2 } },
      { selector: ".eh-ghost-edge.eh-preview-active", style: { opacity: 0 } },
    ];
    Object.keys(COLORS).forEach(function (kind) {
      s.splice(2, 0, { selector: "node.kind-" + kind, style: {
        "background-color": COLORS[kind][0], "border-color": COLORS[kind][1] } });
    });
    return s;
  }

  function App() {
    this.model = { name: "", nodes: [], edges: [] };
    this.selected = null;      // a node key
    this.local = [];           // problems found here
    this.server = { pending: false, ok: false, problems: [], note: "" };
    this.counter = 0;
    this.cy = window.cytoscape({
      container: $("c-canvas"), style: style(), minZoom: 0.25, maxZoom: 2.5,
      boxSelectionEnabled: false, selectionType: "single",
    });
    this.eh = this.cy.edgehandles({
      snap: true, hoverDelay: 80, snapThreshold: 30,
      canConnect: (source, target) => !source.same(target) && !this.hasEdge(source.id(), target.id()),
    });
    this.form = $("c-form");
    this.listen();
  }

  const app = App.prototype;
  window.TitanApp = App;

  // -- the model -------------------------------------------------------------------------------

  app.node = function (key) { return this.model.nodes.find(function (n) { return n.key === key; }) || null; };
  app.current = function () { return this.selected ? this.node(this.selected) : null; };
  app.hasEdge = function (s, t) { return this.model.edges.some(function (e) { return e.source === s && e.target === t; }); };

  /** The model with each node's place on the canvas, as drafts and the console take it. */
  app.snapshot = function () {
    const cy = this.cy;
    return {
      name: this.model.name,
      nodes: this.model.nodes.map(function (n) {
        const copy = Object.assign({}, n);
        const element = cy.getElementById(n.key);
        if (element.nonempty()) {
          copy.x = Math.round(element.position("x"));
          copy.y = Math.round(element.position("y"));
        }
        return copy;
      }),
      edges: this.model.edges.map(function (e) { return { source: e.source, target: e.target }; }),
    };
  };

  /** Replace the canvas with ``model``; lay it out when a node has no place. */
  app.load = function (model) {
    const nodes = (model && Array.isArray(model.nodes) ? model.nodes : []).map(M.cleanNode);
    const keys = new Set();
    nodes.forEach((n) => {
      if (!n.key || keys.has(n.key)) { n.key = this.newKey(keys); }
      keys.add(n.key);
    });
    const edges = (model && Array.isArray(model.edges) ? model.edges : []).filter(function (e) {
      return e && keys.has(e.source) && keys.has(e.target) && e.source !== e.target;
    }).map(function (e) { return { source: e.source, target: e.target }; });
    this.model = { name: String((model && model.name) || ""), nodes: nodes, edges: edges };
    this.counter = nodes.reduce(function (most, n) {
      const m = /^n(\d+)$/.exec(n.key);
      return m ? Math.max(most, Number(m[1])) : most;
    }, 0);
    this.cy.elements().remove();
    this.cy.add(nodes.map((n) => ({ group: "nodes", data: this.nodeData(n), classes: "kind-" + n.kind,
      position: { x: n.x || 0, y: n.y || 0 } })));
    this.cy.add(edges.map(function (e) { return { group: "edges", data: { id: edgeId(e.source, e.target), source: e.source, target: e.target } }; }));
    $("c-name").value = this.model.name;
    this.select(null);
    if (nodes.some(function (n) { return n.x === undefined; })) {
      this.layout();
    } else {
      this.fit();
    }
    this.changed();
  };

  app.newKey = function (taken) {
    let key;
    do { this.counter += 1; key = "n" + this.counter; } while ((taken && taken.has(key)) || this.node(key));
    return key;
  };

  function edgeId(source, target) { return "e-" + source + "-" + target; }

  app.nodeData = function (node) {
    const label = M.label(node);
    const widest = Math.max.apply(null, label.split("\n").map(function (l) { return l.length; }));
    return { id: node.key, label: label, w: Math.max(120, Math.round(widest * 7.8 + 32)) };
  };

  app.addNode = function (kind, position) {
    const node = M.blankNode(this.newKey(), kind, M.nextId(this.model, kind));
    this.model.nodes.push(node);
    this.cy.add({ group: "nodes", data: this.nodeData(node), classes: "kind-" + kind,
      position: position || this.freeSpot() });
    this.select(node.key);
    this.keepInView(node.key);
    this.changed();
    const id = $("f-id");
    id.focus();
    id.select();
    return node;
  };

  /** Right of the newest node, below any node already there. */
  app.freeSpot = function () {
    const nodes = this.cy.nodes();
    if (nodes.empty()) {
      const extent = this.cy.extent();
      return { x: extent.x1 + Math.min(140, extent.w / 4), y: extent.y1 + extent.h / 2 };
    }
    const last = nodes[nodes.length - 1];
    const spot = { x: last.position("x") + last.outerWidth() / 2 + 150, y: last.position("y") };
    while (nodes.some(function (n) { return Math.abs(n.position("x") - spot.x) < 120 && Math.abs(n.position("y") - spot.y) < 60; })) {
      spot.y += 80;
    }
    return spot;
  };

  app.keepInView = function (key) {
    const box = this.cy.getElementById(key).boundingBox();
    const extent = this.cy.extent();
    if (box.x1 < extent.x1 || box.x2 > extent.x2 || box.y1 < extent.y1 || box.y2 > extent.y2) {
      this.fit();
    }
  };

  app.addEdge = function (source, target) {
    if (source === target || this.hasEdge(source, target) || !this.node(source) || !this.node(target)) {
      return false;
    }
    this.model.edges.push({ source: source, target: target });
    this.cy.add({ group: "edges", data: { id: edgeId(source, target), source: source, target: target } });
    this.changed();
    return true;
  };

  app.removeEdge = function (source, target) {
    this.model.edges = this.model.edges.filter(function (e) { return !(e.source === source && e.target === target); });
    this.cy.getElementById(edgeId(source, target)).remove();
    this.changed();
  };

  app.removeNode = function (key) {
    this.model.nodes = this.model.nodes.filter(function (n) { return n.key !== key; });
    this.model.edges = this.model.edges.filter(function (e) { return e.source !== key && e.target !== key; });
    this.cy.getElementById(key).remove();
    if (this.selected === key) { this.select(null); }
    this.changed();
  };

  app.removeSelected = function () {
    const edge = this.cy.edges(":selected");
    if (edge.nonempty()) {
      this.removeEdge(edge.data("source"), edge.data("target"));
    } else if (this.selected) {
      this.removeNode(this.selected);
    }
  };

  // -- the canvas ------------------------------------------------------------------------------

  app.layout = function () {
    if (this.cy.nodes().empty()) { return; }
    this.cy.layout({ name: "dagre", rankDir: "LR", nodeSep: 36, rankSep: 80, animate: false, fit: false }).run();
    this.curveBackEdges();
    this.fit();
    this.persist();
  };

  app.fit = function () {
    if (this.cy.nodes().empty()) { return; }
    this.cy.fit(undefined, 40);
    if (this.cy.zoom() > 1.2) {
      this.cy.zoom(1.2);
      this.cy.center();
    }
  };

  app.setMode = function (mode) {
    document.querySelectorAll(".ctor-seg [data-mode]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-mode") === mode));
    });
    if (mode === "connect") {
      this.eh.enableDrawMode();
      $("c-hint").textContent = "Connect mode: drag from a job to the job that waits for it.";
    } else {
      this.eh.disableDrawMode();
      $("c-hint").textContent = "Move mode: drag jobs around; select one to edit it.";
    }
    $("c-canvas").setAttribute("data-mode", mode);
  };

  app.select = function (key) {
    this.selected = key && this.node(key) ? key : null;
    const element = this.selected ? this.cy.getElementById(this.selected) : null;
    this.syncing = true;  // the canvas's select events below are ours: not acted on
    try {
      if (element && !element.selected()) {
        this.cy.elements(":selected").unselect();
        element.select();
      } else if (!element) {
        this.cy.nodes(":selected").unselect();
      }
    } finally {
      this.syncing = false;
    }
    $("c-pick").value = this.selected || "";
    this.fill();
  };

  // -- checks ----------------------------------------------------------------------------------

  /** The problems shown: found here, else the console's (the authority). */
  app.problems = function () {
    return this.local.length ? this.local : this.server.problems;
  };

  app.changed = function () {
    this.local = M.validate(this.model);
    this.server.pending = true;
    $("constructor").setAttribute("data-sync", "pending");
    this.paint();
    this.persist();
    window.TitanIO.render(this);
  };

  /** The console's verdict on the model as it was when asked. */
  app.judged = function (answer) {
    this.server = { pending: false, ok: !!answer.ok, note: answer.note || "",
      problems: (answer.problems || []).map(function (p) {
        return { message: p.line ? "Line " + p.line + ": " + p.message : p.message, keys: p.keys || [], edges: [] };
      }) };
    if (answer.error) { this.server.problems.push({ message: answer.error, keys: [], edges: [] }); }
    if (typeof answer.yaml === "string") {
      $("c-yaml").textContent = answer.yaml;
      $("c-python").textContent = answer.python;
    }
    this.paint();
    $("constructor").setAttribute("data-sync", "done");  // the panes show the latest change
  };

  /** An edge that runs right to left (against the layout) curves, so that it never hides
   *  under the edges of the row it crosses. */
  app.curveBackEdges = function () {
    this.cy.edges().forEach(function (edge) {
      edge.toggleClass("back", edge.target().position("x") < edge.source().position("x") - 20);
    });
  };

  app.paint = function () {
    const cy = this.cy;
    const problems = this.problems();
    this.curveBackEdges();
    cy.elements().removeClass("bad");
    problems.forEach(function (p) {
      p.keys.forEach(function (key) { cy.getElementById(key).addClass("bad"); });
      p.edges.forEach(function (e) { cy.getElementById(edgeId(e[0], e[1])).addClass("bad"); });
    });
    const jobs = this.model.nodes.length;
    const deps = this.model.edges.length;
    $("c-counts").textContent = jobs ? jobs + (jobs === 1 ? " job · " : " jobs · ") + deps +
      (deps === 1 ? " dependency" : " dependencies") : "No jobs yet";
    $("c-empty").hidden = jobs > 0;
    this.fillPick();
    this.fillNodeProblems();
    this.showVerdict(problems);
  };

  // -- keeping the canvas ----------------------------------------------------------------------

  app.persist = function () {
    clearTimeout(this.persistTimer);
    this.persistTimer = setTimeout(() => this.persistNow(), 200);
  };

  app.persistNow = function () {
    clearTimeout(this.persistTimer);
    try {
      window.localStorage.setItem(STORE, JSON.stringify({ model: this.snapshot(), saved_at: Date.now() }));
    } catch (e) { /* private mode or full: the canvas is not kept, nothing else breaks */ }
  };

  app.restore = function () {
    let kept = null;
    try { kept = JSON.parse(window.localStorage.getItem(STORE) || "null"); } catch (e) { kept = null; }
    this.load(kept && kept.model ? kept.model : { name: "", nodes: [], edges: [] });
  };

  // -- events ----------------------------------------------------------------------------------

  app.listen = function () {
    const cy = this.cy;
    cy.on("select", "node", (e) => {
      if (!this.syncing && this.selected !== e.target.id()) { this.select(e.target.id()); }
    });
    cy.on("select", "edge", () => {
      if (this.syncing) { return; }
      this.select(null);
      $("c-remove").disabled = false;
    });
    cy.on("unselect", () => {
      if (this.syncing) { return; }
      if (cy.elements(":selected").empty() && this.selected) { this.select(null); }
      $("c-remove").disabled = !this.selected && cy.elements(":selected").empty();
    });
    cy.on("dragfree", "node", () => { this.curveBackEdges(); this.persist(); });
    cy.on("ehcomplete", (event, source, target, added) => {
      added.remove();
      this.addEdge(source.id(), target.id());
    });
    this.form.addEventListener("input", (e) => this.onField(e));
    this.form.addEventListener("change", (e) => this.onField(e));
    this.form.addEventListener("submit", (e) => e.preventDefault());
    $("f-add-parent-go").addEventListener("click", () => {
      const key = $("f-add-parent").value;
      if (key && this.selected) { this.addEdge(key, this.selected); this.fill(); }
    });
    $("f-remove").addEventListener("click", () => this.selected && this.removeNode(this.selected));
    $("c-remove").addEventListener("click", () => this.removeSelected());
    $("c-layout").addEventListener("click", () => this.layout());
    $("c-fit").addEventListener("click", () => this.fit());
    $("c-pick").addEventListener("change", (e) => { this.select(e.target.value); if (this.selected) { this.keepInView(this.selected); } });
    $("c-name").addEventListener("input", (e) => { this.model.name = e.target.value; this.changed(); });
    document.querySelectorAll(".ctor-seg [data-mode]").forEach((b) => {
      b.addEventListener("click", () => this.setMode(b.getAttribute("data-mode")));
    });
    window.addEventListener("pagehide", () => this.persistNow());
    this.listenPalette();
    this.listenKeys();
    this.listenClear();
  };

  app.listenPalette = function () {
    const wrap = document.querySelector(".ctor-canvas-wrap");
    document.querySelectorAll(".ctor-tile").forEach((tile) => {
      tile.addEventListener("click", () => this.addNode(tile.getAttribute("data-kind")));
      tile.addEventListener("dragstart", (e) => {
        e.dataTransfer.setData("application/x-titan-kind", tile.getAttribute("data-kind"));
        e.dataTransfer.effectAllowed = "copy";
      });
    });
    wrap.addEventListener("dragover", (e) => {
      if (Array.prototype.indexOf.call(e.dataTransfer.types, "application/x-titan-kind") >= 0) {
        e.preventDefault();
        e.dataTransfer.dropEffect = "copy";
      }
    });
    wrap.addEventListener("drop", (e) => {
      const kind = e.dataTransfer.getData("application/x-titan-kind");
      if (!M.KIND_NAMES[kind]) { return; }
      e.preventDefault();
      const box = $("c-canvas").getBoundingClientRect();
      const pan = this.cy.pan();
      const zoom = this.cy.zoom();
      this.addNode(kind, { x: (e.clientX - box.left - pan.x) / zoom, y: (e.clientY - box.top - pan.y) / zoom });
    });
  };

  app.listenKeys = function () {
    document.addEventListener("keydown", (e) => {
      const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName) ||
        document.activeElement.isContentEditable || document.querySelector("dialog[open]");
      if (typing || e.ctrlKey || e.metaKey || e.altKey) { return; }
      if (e.key === "Delete" || e.key === "Backspace") {
        if (document.activeElement === $("c-canvas") || document.activeElement === document.body) {
          e.preventDefault();
          this.removeSelected();
        }
      } else if (e.key === "c" || e.key === "m") {
        this.setMode(e.key === "c" ? "connect" : "move");
      } else if (e.key === "Escape") {
        this.cy.elements(":selected").unselect();
        this.select(null);
      }
    });
  };

  app.listenClear = function () {
    const button = $("c-clear");
    let armed = null;
    button.addEventListener("click", () => {
      if (!armed) {
        button.textContent = "Click again to clear";
        armed = setTimeout(() => { armed = null; button.textContent = "Clear"; }, 4000);
        return;
      }
      clearTimeout(armed);
      armed = null;
      button.textContent = "Clear";
      this.load({ name: this.model.name, nodes: [], edges: [] });
    });
  };

  function start() {
    if (!$("constructor") || !window.cytoscape || !window.TitanIO || !app.fill) { return; }
    const instance = new App();
    window.TitanIO.bind(instance);
    instance.restore();
    instance.setMode("move");
    window.titanConstructor = instance;  // for the browser tests and the curious
  }

  // deferred scripts run in order before DOMContentLoaded: constructor-form.js and
  // constructor-io.js come after this one
  if (document.readyState === "complete") {
    start();
  } else {
    document.addEventListener("DOMContentLoaded", start);
  }
})();
