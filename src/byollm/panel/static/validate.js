// Validate page: while the doctor runs (a test prompt per model through AWS can take a while), show a
// progress indicator with the elapsed time and keep the button from being pressed twice. Without JS the
// form still submits; the page just gives no progress feedback.
(function () {
  "use strict";
  var form = document.getElementById("validate-form");
  var progress = document.getElementById("validate-progress");
  if (!form || !progress) { return; }
  form.addEventListener("submit", function () {
    var button = document.getElementById("run-validate");
    var elapsed = document.getElementById("validate-elapsed");
    var started = Date.now();
    progress.hidden = false;
    form.setAttribute("aria-busy", "true");
    // disabled after this event, so the browser still submits the form
    window.setTimeout(function () { if (button) { button.disabled = true; button.textContent = "Validating…"; } }, 0);
    window.setInterval(function () {
      if (elapsed) { elapsed.textContent = " (" + Math.round((Date.now() - started) / 1000) + " s so far)"; }
    }, 1000);
  });
})();
