/* Titan console, a run's graph (1 of 3): how the graph looks. Cytoscape.js setup, the styles,
 * the dagre layout (top to bottom), node labels and colours, the zoom buttons, and #graph-nodes.
 *
 * - Colours are the console's palette: the --st-* CSS variables of the state classes the graph
 *   JSON names. Gates are diamonds, services hexagons with a double border, jobs added at run
 *   time have a dashed border and an "added by" line, parents in other runs are faded.
 * - #graph-nodes mirrors each node's state as data attributes (and text for screen readers).
 *
 * Loaded before graph-panel.js and graph.js; shares state through window.TitanGraph (see
 * graph.js). Defines functions only: nothing runs until graph.js starts the view.
 */
(function () {
  "use strict";

  var G = window.TitanGraph = window.TitanGraph || {};

  G.ON_WORKER = { running: 1, starting: 1, ready: 1, restarting: 1 };
  G.ENDED = { completed: 1, dead: 1, cancelled: 1, skipped: 1, approved: 1, rejected: 1,
              timed_out: 1, stopped: 1 };
  var ON_WORKER = G.ON_WORKER;
  var palette = null;
  var stateClasses = {};

  function colour(state) {
    var name = stateClasses[state] || "st-pending";
    palette = palette || getComputedStyle(document.documentElement);
    return palette.getPropertyValue("--" + name).trim() || "#6b7480";
  }

  function stateLine(job) {
    var text = job.state.replace("_", " ");
    if (job.kind === "gate" && job.state === "waiting") {
      return "waiting: " + (job.message || "approve?");
    }
    // why a queued job does not start (no capable worker, all busy), a delay: at a glance
    var why = shortWhy(job);
    if (why) {
      return text + ": " + why;
    }
    if (job.kind === "service" && job.state === "ready" && job.port) {
      text += " on port " + job.port;
    } else if (ON_WORKER[job.state] && job.worker) {
      text += " on " + job.worker;
    }
    if (job.attempt > 1 && job.kind !== "gate") {
      text += " \u00b7 try " + job.attempt;
    }
    return text;
  }

  // The scheduler's reasons (scheduler/routing.py, engine.py), said in a node's width; the
  // whole sentence is in the tooltip and the panel.
  var WHY = [
    [/^no worker with tag (\S+)/, "no $1 worker"], [/^all capable workers busy/, "workers busy"],
    [/^pinned worker (\S+) is not connected/, "$1 is away"],
    [/^pinned worker (\S+) is busy/, "$1 is busy"], [/^delayed until/, "delayed"],
    [/^backoff until/, "will retry"]
  ];

  function shortWhy(job) {
    if (!job.waiting || !(job.state === "queued" || job.state === "pending" ||
                          job.state === "failed")) {
      return "";
    }
    for (var i = 0; i < WHY.length; i += 1) {
      if (WHY[i][0].test(job.waiting)) {
        return job.waiting.match(WHY[i][0])[0].replace(WHY[i][0], WHY[i][1]);
      }
    }
    return "";
  }

  // Text is measured as the canvas draws it (the fonts differ from one system to the next).
  var FONT_FAMILY = "system-ui, -apple-system, Segoe UI, Roboto, Arial, sans-serif";
  var ruler = document.createElement("canvas").getContext("2d");

  function measure(text, weight) {
    ruler.font = (weight || 600) + " 12px " + FONT_FAMILY;
    return ruler.measureText(text).width;
  }

  function fitText(text, pixels, weight) {
    text = String(text || "");
    if (measure(text, weight) <= pixels) {
      return text;
    }
    var low = 0, high = text.length;
    while (low < high) {  // the longest start that fits with the ellipsis
      var middle = Math.ceil((low + high) / 2);
      if (measure(text.slice(0, middle) + "\u2026", weight) <= pixels) { low = middle; }
      else { high = middle - 1; }
    }
    return text.slice(0, Math.max(low, 1)) + "\u2026";
  }

  // A node's size depends on its id (and on whether it was added), never on its state: a
  // state change recolours it in place, with no new layout.
  function nodeData(job) {
    var gate = job.kind === "gate";
    var service = job.kind === "service";
    var room = gate ? 190 : Math.min(260, Math.max(165, measure(job.id) + 4));
    var width = gate ? 36 : room + (service ? 58 : 24);  // a hexagon's corners take room
    // one line each, so that a label never grows over its edges when the state changes
    var lines = [fitText(job.id, room), fitText(stateLine(job), room)];
    if (job.added_by) {
      lines.push(fitText("added by " + job.added_by, room));
    }
    return {
      id: job.id, job: job, label: lines.join("\n"), state: job.state, kind: job.kind,
      added: job.added_by ? "yes" : "no", fill: colour(job.state),
      ink: job.state === "skipped" ? "#343a40" : "#ffffff",
      w: width, h: gate ? 36 : 16 + lines.length * 15, wrap: room + 2
    };
  }

  function externalData(ref) {
    var text = fitText(ref.job_id, 150, 400) + "\n" + fitText("in run " + ref.run_id, 150, 400);
    return { id: ref.id, external: "yes", ref: ref, label: text, w: 174, h: 46, wrap: 152 };
  }

  var STYLE = [
    { selector: "node", style: {
      "shape": "round-rectangle", "width": "data(w)", "height": "data(h)",
      "background-color": "data(fill)", "color": "data(ink)", "label": "data(label)",
      "text-wrap": "wrap", "text-max-width": "data(wrap)", "text-valign": "center",
      "text-halign": "center", "font-size": 12, "font-weight": 600, "line-height": 1.25,
      "font-family": FONT_FAMILY,
      "border-width": 1, "border-color": "#1d2733", "border-opacity": 0.25 } },
    { selector: "node[kind = 'service']", style: {
      "shape": "round-hexagon", "border-width": 5, "border-style": "double",
      "border-color": "#0b3d4a", "border-opacity": 1 } },
    { selector: "node[kind = 'gate']", style: {
      "shape": "diamond", "color": "#1d2733", "text-valign": "bottom", "text-margin-y": 5,
      "border-width": 2, "border-color": "#3b2391", "border-opacity": 1,
      "text-background-color": "#ffffff", "text-background-opacity": 0.85,
      "text-background-padding": 2 } },
    { selector: "node[added = 'yes']", style: {
      "border-width": 3, "border-style": "dashed", "border-color": "#1d2733",
      "border-opacity": 1 } },
    { selector: "node[external = 'yes']", style: {
      "background-color": "#ffffff", "color": "#5b6775", "font-weight": 400,
      "border-width": 1.5, "border-style": "dashed", "border-color": "#8b97a4",
      "border-opacity": 1, "opacity": 0.7 } },
    { selector: "node.focused", style: {
      "underlay-color": "#f59f00", "underlay-opacity": 0.3, "underlay-padding": 8 } },
    { selector: "node:selected", style: {
      "background-color": "data(fill)", "underlay-color": "#f59f00", "underlay-opacity": 0.55,
      "underlay-padding": 5 } },
    { selector: "edge", style: {
      "curve-style": "bezier", "width": 1.6, "line-color": "#9aa5b1",
      "target-arrow-color": "#9aa5b1", "target-arrow-shape": "triangle", "arrow-scale": 0.9 } },
    { selector: "edge[external = 'yes']", style: { "line-style": "dashed", "opacity": 0.7 } }
  ];

  function elementsOf(graph) {
    var elements = [];
    graph.external.forEach(function (ref) {
      elements.push({ group: "nodes", data: externalData(ref) });
    });
    graph.nodes.forEach(function (job) {
      elements.push({ group: "nodes", data: nodeData(job) });
    });
    var outside = {};
    graph.external.forEach(function (ref) { outside[ref.id] = true; });
    graph.edges.forEach(function (edge) {
      elements.push({ group: "edges", data: {
        id: "e\u0000" + edge.source + "\u0000" + edge.target, source: edge.source,
        target: edge.target, external: outside[edge.source] ? "yes" : "no" } });
    });
    return elements;
  }

  function shapeOf(elements) {
    return elements.map(function (e) { return e.data.id; }).sort().join("\u0001");
  }

  G.draw = function (graph) {
    stateClasses = graph.state_classes || {};
    var elements = elementsOf(graph);
    var cy = G.cy;
    if (cy === null) {
      cy = G.cy = window.cytoscape({
        container: G.box, elements: elements, style: STYLE, minZoom: 0.2, maxZoom: 2,
        boxSelectionEnabled: false, selectionType: "single", autoungrabify: true,
        userZoomingEnabled: false  // the wheel scrolls the page; the buttons zoom
      });
      bind();
      layout();
    } else if (shapeOf(elements) === cy.scratch("shape")) {
      elements.forEach(function (e) {
        if (e.group === "nodes") { cy.getElementById(e.data.id).data(e.data); }
      });
    } else {
      cy.batch(function () {
        cy.elements().remove();
        cy.add(elements);
      });
      layout();
    }
    cy.scratch("shape", shapeOf(elements));
    mirrorAll();
    var selected = G.selected;
    var chosen = selected ? cy.getElementById(selected) : null;
    if (chosen && !chosen.empty() && !chosen.selected()) {
      if (G.log.job === selected) {
        chosen.select();  // drawn again: mark it, the panel beside stays as it is
        G.setFocus(selected);
      } else {
        G.select(selected, false);  // the page opened with ?job=JOB
      }
    }
  };

  function layout() {
    G.cy.layout({ name: "dagre", rankDir: "TB", nodeSep: 28, rankSep: 46, edgeSep: 12,
                  nodeDimensionsIncludeLabels: true, fit: false, animate: false }).run();
    fitHeight();
  }

  // The box is as tall as the graph needs at a readable zoom (within bounds), then fitted.
  function fitHeight() {
    var cy = G.cy, box = G.box;
    var bounds = cy.elements().boundingBox();
    var width = box.clientWidth || 800;
    var zoom = Math.min(1, (width - 48) / Math.max(bounds.w, 1));
    var height = Math.max(220, Math.min(620, Math.ceil(bounds.h * zoom + 56)));
    box.style.height = height + "px";
    cy.resize();
    fit();
  }

  function fit() {
    var cy = G.cy;
    cy.fit(undefined, 24);
    if (cy.zoom() > 1) {
      cy.zoom(1);
      cy.center();
    }
  }

  function mirrorAll() {
    var items = document.createDocumentFragment();
    var mirror = G.mirror;
    G.cy.nodes().forEach(function (node) {
      var item = document.createElement("li");
      mirrorOne(item, node);
      items.appendChild(item);
    });
    mirror.textContent = "";
    mirror.appendChild(items);
  }

  function mirrorOne(item, node) {
    var data = node.data();
    item.setAttribute("data-job", data.id);
    if (data.external === "yes") {
      item.setAttribute("data-external", "yes");
      item.textContent = data.ref.job_id + ", in run " + data.ref.run_id;
      return;
    }
    item.setAttribute("data-state", data.state);
    item.setAttribute("data-kind", data.kind);
    item.setAttribute("data-colour", data.fill);
    item.textContent = describe(data.job);
  }

  G.mirrorNode = function (node) {
    var items = G.mirror.children;
    for (var i = 0; i < items.length; i += 1) {
      if (items[i].getAttribute("data-job") === node.id()) {
        mirrorOne(items[i], node);
        return;
      }
    }
  };

  function describe(job) {
    var text = job.id + " (" + job.kind + "): " + stateLine(job);
    if (job.waiting) { text += "; " + job.waiting; }
    if (job.added_by) { text += "; added by " + job.added_by; }
    return text;
  }

  function bind() {
    var cy = G.cy, box = G.box;
    cy.on("tap", "node", function (event) { G.select(event.target.id(), true); });
    cy.on("mouseover", "node", function (event) {
      var data = event.target.data();
      box.title = data.external === "yes" ? data.ref.id + " (a parent in another run)"
        : describe(data.job);
      box.style.cursor = "pointer";
    });
    cy.on("mouseout", "node", function () {
      box.removeAttribute("title");
      box.style.cursor = "";
    });
    box.addEventListener("keydown", G.onKey);
    var buttons = G.view.querySelectorAll("[data-graph-action]");
    Array.prototype.forEach.call(buttons, function (button) {
      button.addEventListener("click", function () {
        var action = button.getAttribute("data-graph-action");
        if (action === "fit") {
          fit();
          return;
        }
        var level = cy.zoom() * (action === "zoom-in" ? 1.25 : 0.8);
        cy.zoom({ level: level, renderedPosition: { x: box.clientWidth / 2,
                                                    y: box.clientHeight / 2 } });
      });
    });
  }

  G.nodeData = nodeData;
  G.describe = describe;
})();
