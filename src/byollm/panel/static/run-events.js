// Live run events for the run page: an EventSource on the panel's session-authenticated SSE endpoint.
// Loaded from /admin/_static (the CSP allows scripts from this origin only); without JS the page still
// shows every event up to the time it was rendered.
(function () {
  "use strict";
  var list = document.getElementById("events");
  if (!list || list.dataset.live !== "yes" || !window.EventSource) { return; }
  var status = document.getElementById("stream-status");
  var state = document.getElementById("run-state");
  var source = new EventSource(list.dataset.stream);
  source.addEventListener("run", function (message) {
    var item = document.createElement("li");
    var event;
    try { event = JSON.parse(message.data); } catch (e) { event = null; }
    if (event) {
      var kind = document.createElement("strong");
      kind.textContent = event.kind;
      var when = document.createElement("span");
      when.className = "hint";
      when.textContent = " #" + event.seq + " " + String(event.at).slice(11, 19) + " ";
      var code = document.createElement("code");
      code.textContent = JSON.stringify(event.data);
      item.append(kind, when, code);
      if (event.kind === "state" && event.data && event.data.state && state) { state.textContent = event.data.state; }
    } else {
      item.textContent = message.data;
    }
    list.appendChild(item);
  });
  source.addEventListener("end", function () {
    source.close();
    var controls = document.getElementById("run-controls");
    if (controls) { controls.hidden = true; }
    if (status) { status.textContent = "The run has ended. Reload the page for its final details."; }
  });
})();
