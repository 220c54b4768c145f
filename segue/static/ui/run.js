/* The run page: charts of long metric series fetch their points after the page shows.
 *
 * Kind "metric": the spec of a "lines" chart (segue.js) whose series are not in the page but
 * at spec.src, which answers {"series": [{"label", "x", "y"}], "total", "drawn"}. First comes
 * spec.first (the page preloads it while the scripts load): the same with ?points=2000, the
 * lowest and highest point of 1,000 buckets, which draws the same picture at the chart's
 * width, so a long series paints at once. When points were left out, the whole series (up to
 * the server's limit) follows and is drawn in its place, for zooming in. Each is drawn as
 * "lines" (log scale and smoothing included).
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

  function load(src) {
    // As the page's <link rel="preload" as="fetch" crossorigin> asks, so that it is reused.
    return fetch(src, { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      });
  }

  function show(element, spec, body, more) {
    spec.series = body.series;
    if (element._plot) element._plot.destroy();  // the first paint's, replaced
    Segue.kinds.lines(element, spec);
    if (body.drawn < body.total) {
      var note = document.createElement("p");
      note.className = "hint";
      note.textContent = Segue.formatNumber(body.total) + " points, " + Segue.formatNumber(body.drawn) +
        " drawn (lowest and highest per bucket)" + (more ? "; loading the rest for zooming in…" : "");
      element.appendChild(note);
    }
  }

  Segue.kinds.metric = function (element, spec) {
    say(element, "Loading the points…", "chart-empty");
    load(spec.first || spec.src)
      .then(function (first) {
        var more = first.drawn < first.total;
        show(element, spec, first, more);
        if (!more) return null;
        return load(spec.src).then(function (whole) {
          if (whole.drawn > first.drawn) show(element, spec, whole, false);
        }, function (error) {
          // The first paint stays; its note says the rest did not come.
          var hint = element.querySelector(".hint");
          if (hint) hint.textContent = hint.textContent.replace(/; loading the rest.*$/, "");
          var note = document.createElement("p");
          note.className = "error";
          note.textContent = "Could not load the rest of the points: " + error.message;
          element.appendChild(note);
        });
      })
      .catch(function (error) {
        say(element, "Could not load the points of " + (spec.y && spec.y.label) + ": " + error.message, "error");
      });
  };
})();
