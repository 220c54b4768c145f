/* The runs table: bulk select for "Compare selected" (2 to 20 runs) and a select-all box.
 * Works on the table as first served and after every htmx swap (events are delegated). */
(function () {
  "use strict";
  var MIN = 2, MAX = 20;

  function update(root) {
    var form = (root || document).querySelector ? document.getElementById("compare-form") : null;
    if (!form) return;
    var boxes = form.querySelectorAll("input[name=run]");
    var checked = form.querySelectorAll("input[name=run]:checked").length;
    var button = form.querySelector(".compare-button");
    var count = form.querySelector(".selected-count");
    var all = form.querySelector(".select-all");
    if (button) {
      button.disabled = checked < MIN || checked > MAX;
      button.textContent = checked ? "Compare selected (" + checked + ")" : "Compare selected";
    }
    if (count) {
      count.textContent = checked > MAX ? "at most " + MAX + " runs can be compared"
        : checked === 1 ? "select at least " + MIN + " runs" : "";
    }
    if (all) {
      all.checked = boxes.length > 0 && checked === boxes.length;
      all.indeterminate = checked > 0 && checked < boxes.length;
    }
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (!target.closest || !target.closest("#compare-form")) return;
    if (target.classList.contains("select-all")) {
      document.querySelectorAll("#compare-form input[name=run]").forEach(function (box) {
        box.checked = target.checked;
      });
    }
    update();
  });
  document.addEventListener("DOMContentLoaded", function () { update(); });
  document.addEventListener("htmx:afterSettle", function () { update(); });
})();
