// buildsd dashboard: follow a build's log over Server-Sent Events, resuming after a dropped
// connection from the last line received (its event id is the cursor), so no line is lost or
// shown twice. Lines are added as text nodes: a log line is never parsed as markup.
"use strict";
(function () {
  const log = document.getElementById("log");
  if (!log) return;
  const stateLine = document.getElementById("log-state");
  const status = document.getElementById("status");
  const url = log.dataset.stream;
  let last = null;
  let source = null;
  let ended = false;
  let retryMs = 500;

  function connect() {
    // Our own reconnect (not EventSource's) so the cursor is always the last line shown.
    source = new EventSource(last ? url + "?cursor=" + encodeURIComponent(last) : url);
    source.onopen = function () {
      stateLine.textContent = "Following the log live.";
      retryMs = 500;
    };
    source.addEventListener("line", function (event) {
      if (event.lastEventId === last) return;
      last = event.lastEventId;
      const [ts, text] = JSON.parse(event.data);
      const item = document.createElement("li");
      const time = document.createElement("time");
      time.dateTime = new Date(ts).toISOString();
      time.textContent = new Date(ts).toISOString().slice(11, 19);
      item.appendChild(time);
      item.appendChild(document.createTextNode(" " + text));
      const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
      log.appendChild(item);
      if (atBottom) item.scrollIntoView({ block: "end" });
    });
    source.addEventListener("end", function (event) {
      ended = true;
      source.close();
      const done = JSON.parse(event.data);
      const outcome = done.build_outcome || done.status;
      status.textContent = outcome;
      status.className = "badge " + outcome;
      stateLine.textContent = "The build has stopped: " + outcome + ".";
      const cancel = document.getElementById("cancel");
      if (cancel) cancel.closest("form").remove();
      refreshPhases();
    });
    source.onerror = function () {
      source.close();
      if (ended) return;
      stateLine.textContent = "Connection lost; reconnecting…";
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 10000);
    };
  }
  // Phases come with the page, not the stream: re-read them from the page every few seconds
  // while the build runs, and once at its end (the server escaped them; nothing is parsed as
  // script: DOMParser documents run none).
  function refreshPhases() {
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (answer) { return answer.ok ? answer.text() : null; })
      .then(function (html) {
        if (!html) return;
        const fresh = new DOMParser().parseFromString(html, "text/html").querySelector(".phases");
        const shown = document.querySelector(".phases");
        if (fresh && shown) shown.replaceChildren(...Array.from(fresh.childNodes));
      })
      .catch(function () {});
  }
  const phaseTimer = setInterval(function () {
    refreshPhases();
    if (ended) clearInterval(phaseTimer);
  }, 3000);
  connect();
})();
