/* Titan console: the little the pages need beyond htmx.
 *
 * - After an event stream re-opens (the browser reconnected: it may have missed events), every
 *   live fragment is re-fetched: they listen to "titan:refresh" on the body.
 * - A live fragment is not replaced while the user types in it (a gate's comment).
 * - A job's log streams over its own EventSource (chunks of JSON text, appended as text, never
 *   as HTML), resuming from the byte offset the page was rendered with.
 */
(function () {
  "use strict";

  var opened = 0;
  document.addEventListener("htmx:sseOpen", function () {
    opened += 1;
    if (opened > 1 && window.htmx) {
      window.htmx.trigger(document.body, "titan:refresh");
    }
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    var target = event.detail && event.detail.elt;
    if (!target || !target.hasAttribute || !target.hasAttribute("data-live")) {
      return;
    }
    var editing = target.contains(document.activeElement) &&
      /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName);
    var typed = Array.prototype.some.call(
      target.querySelectorAll("textarea, input[type=text]"),
      function (field) { return field.value !== ""; });
    if (editing || typed) {
      event.preventDefault();
      target.setAttribute("data-stale", "true");
    }
  });

  var MAX_LOG_CHARS = 2000000;

  function followLog(pre) {
    var url = pre.getAttribute("data-stream");
    var state = document.getElementById("log-state");
    if (!url || !window.EventSource) {
      return;
    }
    var source = new EventSource(url + "?offset=" + encodeURIComponent(pre.getAttribute("data-offset") || "0"));
    function say(text) { if (state) { state.textContent = text; } }
    source.addEventListener("open", function () { say("following the output live"); });
    source.addEventListener("chunk", function (event) {
      var atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
      var text;
      try { text = JSON.parse(event.data).text; } catch (e) { return; }
      pre.appendChild(document.createTextNode(text));
      if (pre.textContent.length > MAX_LOG_CHARS) {
        pre.textContent = "[earlier output cut here; the full log is in log.txt]\n" +
          pre.textContent.slice(-MAX_LOG_CHARS / 2);
      }
      if (atBottom) { pre.scrollTop = pre.scrollHeight; }
    });
    source.addEventListener("end", function () { say("the job has ended"); source.close(); });
    source.addEventListener("failure", function (event) {
      say("the log stream failed: " + event.data);
      source.close();
    });
    source.addEventListener("error", function () { say("reconnecting…"); });
  }

  function start() {
    var pre = document.getElementById("log");
    if (pre && pre.getAttribute("data-finished") !== "true") {
      followLog(pre);
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
