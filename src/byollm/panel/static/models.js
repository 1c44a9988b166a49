// Models page: "Disable all direct API models" shows its effect at once. While it is on, every per-model
// direct box is unticked and disabled (its saved choice rides along in a hidden field, so turning the switch
// off again restores it), and the fallback order keeps only the models Bedrock can still serve; turning it
// off restores each box and the order. Without JS the page shows the saved state, and
// saving applies the switch the same way.
(function () {
  "use strict";
  var all = document.getElementById("direct_api_disabled");
  if (!all) { return; }
  var fallback = document.getElementById("fallback_order");
  var typedOrder = null;  // the fallback order as it was before the switch went on

  function bedrockOn(model) {
    var row = document.querySelector('#routing-form tr[data-model="' + model + '"]');
    var box = row ? row.querySelector('td.bedrock-cell input[type=checkbox]') : null;
    return Boolean(box && box.checked);
  }

  all.addEventListener("change", function () {
    var off = all.checked;
    if (fallback && off) {  // only models still routable through Bedrock stay in the fallback order
      typedOrder = fallback.value;
      fallback.value = fallback.value.split(",").map(function (m) { return m.trim(); })
        .filter(function (m) { return m && bedrockOn(m); }).join(", ");
    } else if (fallback && typedOrder !== null) {
      fallback.value = typedOrder;
      typedOrder = null;
    }
    document.querySelectorAll("#routing-form td.direct-cell").forEach(function (cell) {
      var box = cell.querySelector(".direct-box");
      var kept = cell.querySelector(".direct-kept");
      var note = cell.querySelector(".direct-off-note");
      var label = box ? box.closest("label") : null;
      if (!box || !kept) { return; }
      if (off) {
        box.dataset.saved = box.checked ? "on" : "off";
        kept.disabled = box.dataset.saved !== "on";
        box.checked = false;
        box.disabled = true;
        box.removeAttribute("name");
      } else {
        box.disabled = false;
        box.checked = box.dataset.saved === "on";
        box.name = box.dataset.name;
        kept.disabled = true;
      }
      if (label) { label.classList.toggle("off", off); }
      if (note) { note.hidden = !off; }
    });
  });
})();
