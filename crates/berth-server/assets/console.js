// berth console: the little the pages need beyond HTML. Without it the pages
// still work; with it the logs page follows new lines live.
"use strict";
(function () {
  var log = document.getElementById("log");
  if (!log || !window.EventSource) return;
  var status = document.getElementById("log-status");
  var pause = document.getElementById("log-pause");
  var select = document.getElementById("service");
  var held = [];
  var paused = false;
  var MAX = 2000;

  function say(text) { if (status) status.textContent = text; }
  function nearBottom() { return log.scrollHeight - log.scrollTop - log.clientHeight < 40; }
  function add(entry) {
    var li = document.createElement("li");
    var time = document.createElement("time");
    time.textContent = String(entry.ts || "").replace("T", " ").slice(0, 19);
    var src = document.createElement("span");
    src.className = "src";
    src.textContent = entry.source || "";
    var text = document.createElement("span");
    text.className = "text";
    text.textContent = entry.text || "";
    li.append(time, " ", src, " ", text);
    var stick = nearBottom();
    log.appendChild(li);
    while (log.children.length > MAX) log.removeChild(log.firstChild);
    if (stick) log.scrollTop = log.scrollHeight;
  }

  var source = new EventSource(log.getAttribute("data-stream"));
  source.onopen = function () {
    // The stream starts with the same last lines the page shows.
    log.textContent = "";
    held = [];
    say(paused ? "Paused" : "Live: new lines appear as they come");
  };
  source.onmessage = function (e) {
    var entry;
    try { entry = JSON.parse(e.data); } catch (_) { return; }
    if (paused) { held.push(entry); say("Paused: " + held.length + " new lines held"); }
    else add(entry);
  };
  source.onerror = function () { say("Connection lost; reconnecting…"); };
  log.scrollTop = log.scrollHeight;

  if (pause) {
    pause.hidden = false;
    pause.addEventListener("click", function () {
      paused = !paused;
      pause.setAttribute("aria-pressed", String(paused));
      pause.textContent = paused ? "Resume" : "Pause";
      if (!paused) { held.forEach(add); held = []; say("Live: new lines appear as they come"); }
      else say("Paused");
    });
  }
  if (select && select.form) {
    select.addEventListener("change", function () { select.form.submit(); });
  }
})();
