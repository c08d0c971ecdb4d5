/* Titan console, a run's graph (2 of 3): the panel beside the graph, and moving through it.
 *
 * - Selecting a node (click; or arrow keys then Enter) shows the job beside the graph
 *   (/runs/RUN/jobs/JOB/side, HTML rendered and escaped by the server: its gate decision and
 *   other forms post back to this page) and follows its output over its own EventSource (text
 *   appended as text). The side panel is read again when the job's state changes, but not
 *   while a comment is being typed in it.
 * - Arrow keys walk the nodes top to bottom, left to right; Enter or Space opens one.
 *
 * Loaded after graph-draw.js and before graph.js; shares state through window.TitanGraph (see
 * graph.js). Defines functions only: nothing runs until graph.js starts the view.
 */
(function () {
  "use strict";

  var G = window.TitanGraph = window.TitanGraph || {};

  var MAX_LOG_CHARS = 1000000;
  var side = document.getElementById("graph-side-info");
  var logBox = document.getElementById("graph-side-log");
  var logPre = document.getElementById("graph-log");
  var logState = document.getElementById("graph-log-state");
  var logFull = document.getElementById("graph-log-full");
  var announcer = document.getElementById("graph-announce");
  var sideTimer = null;

  function typing() {
    var active = document.activeElement;
    if (active && side.contains(active) &&
        /^(INPUT|TEXTAREA|SELECT|BUTTON)$/.test(active.tagName)) {
      return true;
    }
    return Array.prototype.some.call(side.querySelectorAll("input[type=text], textarea"),
                                     function (field) { return field.value !== ""; });
  }

  var sideAsked = 0;

  function loadSide(force) {
    var id = G.selected;
    if (!id || (!force && typing())) {
      return;
    }
    sideAsked += 1;
    var asked = sideAsked;
    window.fetch(G.jobsUrl + encodeURIComponent(id) + "/side", { credentials: "same-origin" })
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

  G.sideSoon = function () {
    if (sideTimer === null) {
      sideTimer = window.setTimeout(function () { sideTimer = null; loadSide(false); }, 250);
    }
  };

  function stopLog() {
    var log = G.log;
    if (log.source !== null) {
      log.source.close();
      log.source = null;
    }
  }

  G.followLog = function (job, fresh) {
    var log = G.log;
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
    var base = G.jobsUrl + encodeURIComponent(job.id);
    logFull.href = base + "/log.txt";
    var source = new window.EventSource(base + "/log/stream?offset=" + log.offset);
    log.source = source;
    logState.textContent = "connecting\u2026";
    source.addEventListener("open", function () {
      logState.textContent = "following the output live";
    });
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
  };

  G.select = function (id, announce) {
    var cy = G.cy;
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
    var changed = id !== G.selected || G.log.job !== id;
    G.selected = id;
    cy.nodes(":selected").unselect();
    node.select();
    G.setFocus(id);
    if (window.history && window.history.replaceState) {
      window.history.replaceState(null, "", window.location.pathname + "?job=" +
                                  encodeURIComponent(id));
    }
    loadSide(true);
    if (changed) {
      G.followLog(node.data("job"), true);
    }
    if (announce) {
      announcer.textContent = "Showing " + G.describe(node.data("job"));
    }
  };

  G.setFocus = function (id) {
    var cy = G.cy;
    cy.nodes(".focused").removeClass("focused");
    G.focused = id;
    if (id) { cy.getElementById(id).addClass("focused"); }
  };

  function inOrder() {
    return G.cy.nodes().sort(function (a, b) {
      var pa = a.position(), pb = b.position();
      return Math.abs(pa.y - pb.y) > 8 ? pa.y - pb.y : pa.x - pb.x;
    });
  }

  G.onKey = function (event) {
    var cy = G.cy, focused = G.focused, selected = G.selected;
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
      G.setFocus(node.id());
      var data = node.data();
      announcer.textContent = (data.external === "yes" ? data.ref.job_id + ", in run " +
        data.ref.run_id : G.describe(data.job)) + " (" + (index + 1) + " of " + nodes.length + ")";
    } else if ((event.key === "Enter" || event.key === " ") && (focused || selected)) {
      event.preventDefault();
      G.select(focused || selected, true);
    }
  };
})();
