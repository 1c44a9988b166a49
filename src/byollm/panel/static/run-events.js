// Live run events for the run page: an EventSource on the panel's session-authenticated SSE endpoint.
// Each event arrives with its readable description (title, sentence, severity, details, remediation),
// written by the server with the same code that renders the page, so a failure is highlighted the same way.
// When the run ends, the header (state, attempts, error) is fetched again and swapped in.
// Loaded from /admin/_static (the CSP allows scripts from this origin only); without JS the page still
// shows every event up to the time it was rendered.
(function () {
  "use strict";
  var list = document.getElementById("events");
  if (!list || list.dataset.live !== "yes" || !window.EventSource) { return; }
  var status = document.getElementById("stream-status");
  var source = new EventSource(list.dataset.stream);

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function render(event) {
    var view = event.view || {title: event.kind, text: "", severity: "info", details: [], remediation: ""};
    var item = el("li", "event sev-" + view.severity);
    item.dataset.kind = event.kind;
    var head = el("p", "event-head");
    head.append(el("strong", "", view.title), " ",
                el("span", "hint", "#" + event.seq + " " + String(event.at).slice(11, 19)));
    item.append(head, el("p", "event-text", view.text));
    if (view.details && view.details.length) {
      var details = el("dl", "event-details");
      view.details.forEach(function (pair) { details.append(el("dt", "", pair[0]), el("dd", "", pair[1])); });
      item.append(details);
    }
    if (view.remediation) {
      var fix = el("p", "remediation");
      fix.append(el("strong", "", "How to fix:"), " " + view.remediation);
      item.append(fix);
    }
    return item;
  }

  function refreshFacts() {
    var facts = document.getElementById("run-facts");
    if (!facts || !list.dataset.facts) { return; }
    fetch(list.dataset.facts, {credentials: "same-origin"}).then(function (response) {
      return response.ok ? response.text() : null;
    }).then(function (html) {
      if (!html) { return; }
      var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("run-facts");
      if (fresh) { facts.replaceWith(document.importNode(fresh, true)); }
    }).catch(function () {});
  }

  source.addEventListener("run", function (message) {
    var event;
    try { event = JSON.parse(message.data); } catch (e) { return; }
    list.appendChild(render(event));
    var state = document.getElementById("run-state");
    if (event.kind === "state" && event.state && state) { state.textContent = event.state; }
  });
  source.addEventListener("end", function () {
    source.close();
    var controls = document.getElementById("run-controls");
    if (controls) { controls.hidden = true; }
    if (status) { status.textContent = "The run has ended."; }
    refreshFacts();
  });
})();
