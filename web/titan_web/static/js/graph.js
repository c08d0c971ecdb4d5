/* Titan console: a run drawn as its dependency graph (Cytoscape.js, dagre layout, top to bottom).
 * Three static files, loaded in this order by run.html (the CSP allows no inline script):
 *
 * - graph-draw.js: how the graph looks (Cytoscape setup, styles, layout, labels, colours, zoom
 *   buttons, and #graph-nodes, the list of nodes and states kept for screen readers).
 * - graph-panel.js: the panel beside the graph (a node's panel, its forms, its output as it
 *   comes) and moving through the nodes with the keyboard.
 * - graph.js (this file): reading the graph and keeping it live, and starting the view.
 *
 * They share one object, window.TitanGraph: the page's elements and URLs, the Cytoscape
 * instance (cy), the selected and focused node ids, the log being followed, and each file's
 * functions (draw, nodeData, describe, mirrorNode; select, setFocus, onKey, sideSoon, followLog).
 *
 * Live: the page's event stream (/events?run=RUN, opened by htmx; graph.js adds listeners to
 * it, or opens its own without htmx). A job event after the JSON's last_seq recolours its node;
 * an event about a job the graph lacks (added at run time), a run event (jobs added), a reload,
 * or a reconnect (events may have been missed) re-reads the JSON (#graph's data-graph-url) and
 * lays it out again. Events that come while the JSON is read wait, and only those after its
 * last_seq apply.
 */
(function () {
  "use strict";

  var G = window.TitanGraph;
  var box = document.getElementById("graph");
  var view = document.getElementById("graph-view");
  if (!box || !view || !window.cytoscape || !window.fetch || !window.EventSource ||
      !G || !G.draw || !G.select) {
    return;
  }
  view.hidden = false;

  var graphUrl = box.getAttribute("data-graph-url");
  var eventsUrl = box.getAttribute("data-events-url");
  var problem = document.getElementById("graph-problem");
  var mirror = document.createElement("ol");
  mirror.id = "graph-nodes";
  mirror.className = "sr-only";
  mirror.setAttribute("aria-label", "Jobs in the graph and their states");
  view.appendChild(mirror);

  G.box = box;
  G.view = view;
  G.mirror = mirror;
  G.jobsUrl = box.getAttribute("data-side-url");  // + JOB + "/side", "/log/stream", ...
  G.cy = null;
  G.selected = box.getAttribute("data-selected") || "";
  G.focused = "";
  G.log = { source: null, job: "", offset: 0, ended: false };

  var MAX_HELD = 5000;       // events held while the JSON is read
  var ON_WORKER = G.ON_WORKER;
  var ENDED = G.ENDED;
  var lastSeq = -1;          // the JSON drawn holds every event up to this one
  var helloSeq = 0;          // where the event stream started for us
  var hellos = 0;
  var loading = false;
  var loadAgain = false;
  var waitingEvents = [];    // events that came while the JSON was read
  var loadTimer = null;

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
        G.draw(graph);
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
    if (loading || G.cy === null) {
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
    var node = event.job_id ? G.cy.getElementById(event.job_id) : null;
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
    node.data(G.nodeData(job));
    G.mirrorNode(node);
    if (job.state === "queued" || job.state === "pending") {
      whySoon();  // the event does not say why it waits; the JSON does (same shape: no layout)
    }
    if (job.id === G.selected) {
      G.sideSoon();
      if (!ENDED[job.state] && G.log.ended && G.log.job === job.id) {
        G.followLog(job, false);  // retried: its output goes on
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

  listen();
  load();
})();
