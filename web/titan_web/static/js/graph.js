/* Titan console: a run drawn as its dependency graph (Cytoscape.js, dagre layout, top to bottom).
 *
 * - Nodes and edges come from the graph JSON (#graph's data-graph-url). Colours are the console's
 *   palette: the --st-* CSS variables of the state classes the JSON names. Gates are diamonds,
 *   services hexagons with a double border, jobs added at run time have a dashed border and an
 *   "added by" line, parents in other runs are faded.
 * - Live: the page's event stream (/events?run=RUN, opened by htmx; graph.js adds listeners to
 *   it, or opens its own without htmx). A job event after the JSON's last_seq recolours its
 *   node; an event about a job the graph lacks (added at run time), a run event (jobs added), a
 *   reload, or a reconnect (events may have been missed) re-reads the JSON and lays it out again.
 *   Events that come while the JSON is read wait, and only those after its last_seq apply.
 * - Selecting a node (click; or arrow keys then Enter) shows the job beside the graph
 *   (/runs/RUN/jobs/JOB/side, HTML rendered and escaped by the server) and follows its output
 *   over its own EventSource (text appended as text). The side panel is read again when the
 *   job's state changes, but not while a comment is being typed in it.
 * - #graph-nodes mirrors each node's state as data attributes (and text for screen readers).
 */
(function () {
  "use strict";

  var box = document.getElementById("graph");
  var view = document.getElementById("graph-view");
  if (!box || !view || !window.cytoscape || !window.fetch || !window.EventSource) {
    return;
  }
  view.hidden = false;

  var graphUrl = box.getAttribute("data-graph-url");
  var eventsUrl = box.getAttribute("data-events-url");
  var jobsUrl = box.getAttribute("data-side-url");  // + JOB + "/side", "/log/stream", ...
  var side = document.getElementById("graph-side-info");
  var logBox = document.getElementById("graph-side-log");
  var logPre = document.getElementById("graph-log");
  var logState = document.getElementById("graph-log-state");
  var logFull = document.getElementById("graph-log-full");
  var announcer = document.getElementById("graph-announce");
  var problem = document.getElementById("graph-problem");
  var mirror = document.createElement("ol");
  mirror.id = "graph-nodes";
  mirror.className = "sr-only";
  mirror.setAttribute("aria-label", "Jobs in the graph and their states");
  view.appendChild(mirror);

  var MAX_LOG_CHARS = 1000000;
  var MAX_HELD = 5000;       // events held while the JSON is read
  var ON_WORKER = { running: 1, starting: 1, ready: 1, restarting: 1 };
  var ENDED = { completed: 1, dead: 1, cancelled: 1, skipped: 1, approved: 1, rejected: 1,
                timed_out: 1, stopped: 1 };
  var palette = getComputedStyle(document.documentElement);
  var stateClasses = {};
  var cy = null;
  var lastSeq = -1;          // the JSON drawn holds every event up to this one
  var helloSeq = 0;          // where the event stream started for us
  var hellos = 0;
  var loading = false;
  var loadAgain = false;
  var waitingEvents = [];    // events that came while the JSON was read
  var loadTimer = null;
  var sideTimer = null;
  var selected = box.getAttribute("data-selected") || "";
  var focused = "";
  var log = { source: null, job: "", offset: 0, ended: false };

  // -- drawing --------------------------------------------------------------------------------

  function colour(state) {
    var name = stateClasses[state] || "st-pending";
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

  function draw(graph) {
    stateClasses = graph.state_classes || {};
    var elements = elementsOf(graph);
    if (cy === null) {
      cy = window.cytoscape({
        container: box, elements: elements, style: STYLE, minZoom: 0.2, maxZoom: 2,
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
    var chosen = selected ? cy.getElementById(selected) : null;
    if (chosen && !chosen.empty() && !chosen.selected()) {
      if (log.job === selected) {
        chosen.select();  // drawn again: mark it, the panel beside stays as it is
        setFocus(selected);
      } else {
        select(selected, false);  // the page opened with ?job=JOB
      }
    }
  }

  function layout() {
    cy.layout({ name: "dagre", rankDir: "TB", nodeSep: 28, rankSep: 46, edgeSep: 12,
                nodeDimensionsIncludeLabels: true, fit: false, animate: false }).run();
    fitHeight();
  }

  // The box is as tall as the graph needs at a readable zoom (within bounds), then fitted.
  function fitHeight() {
    var bounds = cy.elements().boundingBox();
    var width = box.clientWidth || 800;
    var zoom = Math.min(1, (width - 48) / Math.max(bounds.w, 1));
    var height = Math.max(220, Math.min(620, Math.ceil(bounds.h * zoom + 56)));
    box.style.height = height + "px";
    cy.resize();
    fit();
  }

  function fit() {
    cy.fit(undefined, 24);
    if (cy.zoom() > 1) {
      cy.zoom(1);
      cy.center();
    }
  }

  function mirrorAll() {
    var items = document.createDocumentFragment();
    cy.nodes().forEach(function (node) {
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

  function mirrorNode(node) {
    var items = mirror.children;
    for (var i = 0; i < items.length; i += 1) {
      if (items[i].getAttribute("data-job") === node.id()) {
        mirrorOne(items[i], node);
        return;
      }
    }
  }

  function describe(job) {
    var text = job.id + " (" + job.kind + "): " + stateLine(job);
    if (job.waiting) { text += "; " + job.waiting; }
    if (job.added_by) { text += "; added by " + job.added_by; }
    return text;
  }

  // -- reading the graph ------------------------------------------------------------------

  function say(text) {
    problem.hidden = !text;
    problem.textContent = text || "";
  }

  function load() {
    if (loading) {
      loadAgain = true;
      return;
    }
    loading = true;
    window.fetch(graphUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (answer) {
        if (!answer.ok) { throw new Error(answer.status + " " + answer.statusText); }
        return answer.json();
      })
      .then(function (graph) {
        draw(graph);
        lastSeq = graph.last_seq;
        say("");
      })
      .catch(function (error) { say("The graph could not be read: " + error.message); })
      .then(function () {
        loading = false;
        var held = waitingEvents;
        waitingEvents = [];
        held.forEach(apply);
        if (loadAgain || (lastSeq >= 0 && helloSeq > lastSeq)) {
          loadAgain = false;
          helloSeq = 0;
          load();
        }
      });
  }

  function loadSoon() {
    if (loadTimer === null) {
      loadTimer = window.setTimeout(function () { loadTimer = null; load(); }, 150);
    }
  }

  var whyTimer = null;

  function whySoon() {  // at most once a second, however many jobs are queued
    if (whyTimer === null) {
      whyTimer = window.setTimeout(function () { whyTimer = null; load(); }, 1000);
    }
  }

  // -- live events ------------------------------------------------------------------------

  function apply(event) {
    if (loading || cy === null) {
      if (waitingEvents.length < MAX_HELD) {
        waitingEvents.push(event);
      } else {
        loadAgain = true;  // too many to hold: the next read of the JSON covers them
      }
      if (!loading) {
        loadSoon();  // the first read failed: try again, now that the run moves
      }
      return;
    }
    if (event.seq <= lastSeq) {
      return;
    }
    var node = event.job_id ? cy.getElementById(event.job_id) : null;
    if (!node || node.empty() || !event.state || node.data("external") === "yes") {
      loadSoon();  // a job added at run time, or something the event does not say
      return;
    }
    var job = {};
    var old = node.data("job");
    Object.keys(old).forEach(function (key) { job[key] = old[key]; });
    job.state = event.state;
    if (event.attempt) { job.attempt = event.attempt; }
    if (event.worker) { job.worker = event.worker; }
    job.waiting = ON_WORKER[job.state] || ENDED[job.state] ? "" : event.detail || "";
    node.data(nodeData(job));
    mirrorNode(node);
    if (job.state === "queued" || job.state === "pending") {
      whySoon();  // the event does not say why it waits; the JSON does (same shape: no layout)
    }
    if (job.id === selected) {
      sideSoon();
      if (!ENDED[job.state] && log.ended && log.job === job.id) {
        followLog(job, false);  // retried: its output goes on
      }
    }
  }

  function onHello(message) {
    hellos += 1;
    var hello = {};
    try { hello = JSON.parse(message.data); } catch (e) { hello = {}; }
    helloSeq = hello.last_seq || 0;
    if (hellos > 1 || (lastSeq >= 0 && helloSeq > lastSeq)) {
      load();  // a reconnect, or the stream starts after what was drawn: events were missed
    }
  }

  function onJob(message) {
    var event;
    try { event = JSON.parse(message.data); } catch (e) { return; }
    apply(event);
  }

  var sources = [];

  function attach(source) {
    if (sources.indexOf(source) >= 0) {
      return;  // the same source opened again (it reconnected by itself)
    }
    sources.push(source);
    source.addEventListener("hello", onHello);
    source.addEventListener("job", onJob);
    source.addEventListener("run", loadSoon);
    source.addEventListener("reload", loadSoon);
  }

  // The page's own stream (htmx's sse-connect) carries this run's events already: listen to
  // it rather than open a second one (browsers allow few connections per host). htmx makes a
  // new EventSource when one is closed for good; each is announced by htmx:sseOpen.
  function listen() {
    var shared = document.querySelector("[sse-connect]");
    if (window.htmx && shared && shared.getAttribute("sse-connect") === eventsUrl) {
      document.addEventListener("htmx:sseOpen", function (event) {
        if (event.detail && event.detail.source) { attach(event.detail.source); }
      });
    } else {
      attach(new window.EventSource(eventsUrl));
    }
  }

  // -- the side panel ---------------------------------------------------------------------

  function typing() {
    var active = document.activeElement;
    if (active && side.contains(active) && /^(INPUT|TEXTAREA|SELECT|BUTTON)$/.test(active.tagName)) {
      return true;
    }
    return Array.prototype.some.call(side.querySelectorAll("input[type=text], textarea"),
                                     function (field) { return field.value !== ""; });
  }

  var sideAsked = 0;

  function loadSide(force) {
    var id = selected;
    if (!id || (!force && typing())) {
      return;
    }
    sideAsked += 1;
    var asked = sideAsked;
    window.fetch(jobsUrl + encodeURIComponent(id) + "/side", { credentials: "same-origin" })
      .then(function (answer) {
        if (!answer.ok) { throw new Error(answer.status + " " + answer.statusText); }
        return answer.text();
      })
      .then(function (html) {
        // only the latest answer, and never over a comment typed meanwhile
        if (asked === sideAsked && (force || !typing())) { side.innerHTML = html; }
      })
      .catch(function (error) {
        if (asked === sideAsked) {
          side.textContent = "";
          var line = document.createElement("p");
          line.className = "hint";
          line.textContent = "This job could not be read: " + error.message;
          side.appendChild(line);
        }
      });
  }

  function sideSoon() {
    if (sideTimer === null) {
      sideTimer = window.setTimeout(function () { sideTimer = null; loadSide(false); }, 250);
    }
  }

  function stopLog() {
    if (log.source !== null) {
      log.source.close();
      log.source = null;
    }
  }

  function followLog(job, fresh) {
    stopLog();
    log.job = job.id;
    log.ended = false;
    if (job.kind === "gate") {
      logBox.hidden = true;  // a gate runs nothing
      return;
    }
    logBox.hidden = false;
    if (fresh) {
      log.offset = 0;
      logPre.textContent = "";
    }
    var base = jobsUrl + encodeURIComponent(job.id);
    logFull.href = base + "/log.txt";
    var source = new window.EventSource(base + "/log/stream?offset=" + log.offset);
    log.source = source;
    logState.textContent = "connecting\u2026";
    source.addEventListener("open", function () { logState.textContent = "following the output live"; });
    source.addEventListener("chunk", function (message) {
      var text;
      try { text = JSON.parse(message.data).text; } catch (e) { return; }
      var atBottom = logPre.scrollTop + logPre.clientHeight >= logPre.scrollHeight - 8;
      logPre.appendChild(document.createTextNode(text));
      log.offset = parseInt(message.lastEventId, 10) || log.offset;
      if (logPre.textContent.length > MAX_LOG_CHARS) {
        logPre.textContent = "[earlier output cut here; the full log is in log.txt]\n" +
          logPre.textContent.slice(-MAX_LOG_CHARS / 2);
      }
      if (atBottom) { logPre.scrollTop = logPre.scrollHeight; }
    });
    source.addEventListener("end", function () {
      logState.textContent = "the job has ended";
      log.ended = true;
      stopLog();
    });
    source.addEventListener("failure", function (message) {
      logState.textContent = "the log stream failed: " + message.data;
      stopLog();
    });
    source.addEventListener("error", function () {
      if (log.source === source) { logState.textContent = "reconnecting\u2026"; }
    });
  }

  function select(id, announce) {
    var node = cy.getElementById(id);
    if (node.empty()) {
      return;
    }
    if (node.data("external") === "yes") {
      var ref = node.data("ref");
      window.location.href = "/runs/" + encodeURIComponent(ref.run_id) + "/jobs/" +
        encodeURIComponent(ref.job_id);
      return;
    }
    var changed = id !== selected || log.job !== id;
    selected = id;
    cy.nodes(":selected").unselect();
    node.select();
    setFocus(id);
    if (window.history && window.history.replaceState) {
      window.history.replaceState(null, "", window.location.pathname + "?job=" +
                                  encodeURIComponent(id));
    }
    loadSide(true);
    if (changed) {
      followLog(node.data("job"), true);
    }
    if (announce) {
      announcer.textContent = "Showing " + describe(node.data("job"));
    }
  }

  // -- interaction --------------------------------------------------------------------------

  function setFocus(id) {
    cy.nodes(".focused").removeClass("focused");
    focused = id;
    if (id) { cy.getElementById(id).addClass("focused"); }
  }

  function inOrder() {
    return cy.nodes().sort(function (a, b) {
      var pa = a.position(), pb = b.position();
      return Math.abs(pa.y - pb.y) > 8 ? pa.y - pb.y : pa.x - pb.x;
    });
  }

  function onKey(event) {
    if (cy === null || cy.nodes().empty()) {
      return;
    }
    var steps = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
    if (event.key in steps) {
      event.preventDefault();
      var nodes = inOrder();
      var index = -1;
      nodes.forEach(function (node, i) { if (node.id() === (focused || selected)) { index = i; } });
      index = index < 0 ? 0 : (index + steps[event.key] + nodes.length) % nodes.length;
      var node = nodes[index];
      setFocus(node.id());
      var data = node.data();
      announcer.textContent = (data.external === "yes" ? data.ref.job_id + ", in run " +
        data.ref.run_id : describe(data.job)) + " (" + (index + 1) + " of " + nodes.length + ")";
    } else if ((event.key === "Enter" || event.key === " ") && (focused || selected)) {
      event.preventDefault();
      select(focused || selected, true);
    }
  }

  function bind() {
    cy.on("tap", "node", function (event) { select(event.target.id(), true); });
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
    box.addEventListener("keydown", onKey);
    Array.prototype.forEach.call(view.querySelectorAll("[data-graph-action]"), function (button) {
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

  listen();
  load();
})();
