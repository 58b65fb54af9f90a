// Gantry dashboard: follows a job's log live over server-sent events.
// Text is added with textContent only, never parsed as HTML.
(function () {
  "use strict";
  var MAX_LINES = 5000;
  function follow() {
    var log = document.getElementById("log");
    if (!log || log.dataset.live !== "yes" || !window.EventSource) return;
    var state = document.getElementById("log-state");
    var url = log.dataset.events + "?after=" + encodeURIComponent(log.dataset.after || "0");
    var es = new EventSource(url);
    if (state) state.textContent = "Following the log live…";
    es.addEventListener("log", function (m) {
      var e;
      try { e = JSON.parse(m.data); } catch (_) { return; }
      var atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      var span = document.createElement("span");
      span.className = String(e.stream || "");
      span.textContent = String(e.message);
      log.appendChild(span);
      log.appendChild(document.createTextNode("\n"));
      // Keep the page light on a long log: the newest lines stay.
      while (log.childNodes.length > 2 * MAX_LINES) {
        log.removeChild(log.firstChild);
        log.removeChild(log.firstChild);
      }
      log.dataset.after = String(e.seq);
      if (atEnd) log.scrollTop = log.scrollHeight;
    });
    es.addEventListener("end", function (m) {
      es.close();
      var job;
      try { job = JSON.parse(m.data); } catch (_) { job = null; }
      var status = document.getElementById("status");
      if (status && job && job.status) {
        status.textContent = job.status;
        status.className = "status " + job.status;
      }
      if (state) state.textContent = "The job has ended. Reload for its outputs and attempts.";
      var cancel = document.getElementById("cancel");
      if (cancel) cancel.disabled = true;
    });
    es.addEventListener("error", function (m) {
      // An `event: error` from the server (data), or a dropped connection
      // (EventSource reconnects by itself, resuming after the last id).
      if (m.data && state) state.textContent = "The log stream stopped; reload to resume.";
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", follow);
  } else {
    follow();
  }
})();
