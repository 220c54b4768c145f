/* The run page: charts of long metric series fetch their points after the page shows.
 *
 * Kind "metric": the spec of a "lines" chart (segue.js) whose series are not in the page but
 * at spec.src, which answers {"series": [{"label", "x", "y"}], "total", "drawn"}. Once they
 * arrive the chart is drawn as "lines" (log scale and smoothing included).
 */
(function () {
  "use strict";
  var Segue = window.Segue = window.Segue || {};
  Segue.kinds = Segue.kinds || {};

  function say(element, text, className) {
    element.innerHTML = "";
    var p = document.createElement("p");
    p.className = className;
    p.textContent = text;
    element.appendChild(p);
  }

  Segue.kinds.metric = function (element, spec) {
    say(element, "Loading the points…", "chart-empty");
    fetch(spec.src, { credentials: "same-origin", headers: { accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (body) {
        spec.series = body.series;
        Segue.kinds.lines(element, spec);
        if (body.drawn < body.total) {
          var note = document.createElement("p");
          note.className = "hint";
          note.textContent = Segue.formatNumber(body.total) + " points, " + Segue.formatNumber(body.drawn) +
            " drawn (lowest and highest per bucket)";
          element.appendChild(note);
        }
      })
      .catch(function (error) {
        say(element, "Could not load the points of " + (spec.y && spec.y.label) + ": " + error.message, "error");
      });
  };
})();
