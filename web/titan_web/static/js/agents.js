/* Agent runs: refresh only what a run event touches.
 *
 * The console's /events stream sends "runs" notices: JSON lists of the ids of the runs that
 * changed. An element with data-agent-runs (space-separated run ids: an agent run's row, or
 * the stages of the agent run page) that holds one of them gets "titan:agent-changed" (its
 * hx-trigger re-fetches it). An id that no such element holds and no data-plain-runs list
 * names is a run this page has not seen (a new stage, or a new agent run): the elements with
 * data-agent-new get "titan:agent-new" (they re-fetch the whole list).
 *
 * Notices are gathered and handled at most once a second, the last ones included (htmx's own
 * "throttle" would drop them, and leave a stage showing a state it has left). Ids are matched
 * when they are handled, against the elements on the page then (a row may have been replaced).
 */
(function () {
  "use strict";

  var GAP_MS = 1000;
  var pending = {};
  var timer = null;
  var last = 0;

  function ids(element, name) {
    return (element.getAttribute(name) || "").split(" ").filter(Boolean);
  }

  function all(selector) {
    return Array.prototype.slice.call(document.querySelectorAll(selector));
  }

  function flush() {
    timer = null;
    last = Date.now();
    var changed = Object.keys(pending);
    pending = {};
    if (!window.htmx || !changed.length) {
      return;
    }
    var holders = all("[data-agent-runs]");
    var plain = {};
    all("[data-plain-runs]").forEach(function (list) {
      ids(list, "data-plain-runs").forEach(function (id) { plain[id] = true; });
    });
    var touched = [];
    var unseen = false;
    changed.forEach(function (id) {
      var found = false;
      holders.forEach(function (holder) {
        if (ids(holder, "data-agent-runs").indexOf(id) >= 0) {
          found = true;
          if (touched.indexOf(holder) < 0) { touched.push(holder); }
        }
      });
      if (!found && !plain[id]) { unseen = true; }
    });
    if (unseen) {
      all("[data-agent-new]").forEach(function (list) {
        window.htmx.trigger(list, "titan:agent-new");
      });
      return; // the whole list (or page) comes again, the touched rows with it
    }
    touched.forEach(function (holder) { window.htmx.trigger(holder, "titan:agent-changed"); });
  }

  function onRuns(event) {
    var changed;
    try { changed = JSON.parse(event.data); } catch (e) { return; }
    if (!Array.isArray(changed)) {
      return;
    }
    changed.forEach(function (id) { pending[String(id)] = true; });
    if (timer === null) {
      timer = window.setTimeout(flush, Math.max(0, last + GAP_MS - Date.now()));
    }
  }

  // the sse extension opens the stream (and a new one after an error): follow each
  document.addEventListener("htmx:sseOpen", function (event) {
    var source = event.detail && event.detail.source;
    if (source && !source.titanAgents) {
      source.titanAgents = true;
      source.addEventListener("runs", onRuns);
    }
  });
})();
