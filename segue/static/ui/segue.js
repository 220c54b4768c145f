/* Segue's web UI: charts drawn with uPlot from JSON specs the server puts in the page.
 *
 * A chart is <div class="chart" data-chart="KIND" data-spec="ID"> plus
 * <script type="application/json" id="ID">SPEC</script>. Kinds:
 *
 *   lines: {"x": {"label": "step", "time": false}, "y": {"label": "loss", "unit": "", "log": false},
 *           "series": [{"label": "run a", "x": [..], "y": [..]}, ...],
 *           "controls": true, "height": 260}
 *     Each series has its own x (steps or epoch seconds); they are joined on x. With
 *     "controls", the chart has a log-scale switch and a smoothing slider (an exponential
 *     moving average, drawn over the faint raw line).
 *   bars:  {"x": {"label": "tenure", "categories": null | ["a", "b", ...]},
 *           "y": {"label": "share of rows"},
 *           "edges": [..] (numeric bins, n+1 edges) or categories in x,
 *           "series": [{"label": "reference", "y": [..]}, {"label": "current", "y": [..]}]}
 *
 * Other kinds register themselves: Segue.kinds.heatmap = function (element, spec) { ... }.
 * Charts are drawn on page load and after every htmx swap; they follow their box's width.
 */
(function () {
  "use strict";
  var PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860",
                 "#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd"];
  var Segue = window.Segue = window.Segue || {};
  Segue.palette = PALETTE;
  Segue.kinds = Segue.kinds || {};

  // Ticks of a step axis: whole numbers only (never "step 0.5").
  var STEPS = [];
  for (var exp = 0; exp < 13; exp++) {
    [1, 2, 5].forEach(function (m) { STEPS.push(m * Math.pow(10, exp)); });
  }

  // Time ticks in 24-hour UTC, as the tables print times: "12-05 14:00", "14:30", "12-05".
  var TIME_FORMATS = null;
  function timeTicks(u, splits, axisIdx, space, incr) {
    TIME_FORMATS = TIME_FORMATS || {
      day: uPlot.fmtDate("{YYYY}-{MM}-{DD}"),
      minute: uPlot.fmtDate("{MM}-{DD} {HH}:{mm}"),
      short: uPlot.fmtDate("{HH}:{mm}"),
      second: uPlot.fmtDate("{HH}:{mm}:{ss}")
    };
    var span = splits.length > 1 ? splits[splits.length - 1] - splits[0] : 0;
    var format = incr >= 86400 ? TIME_FORMATS.day
      : incr < 60 ? TIME_FORMATS.second
      : span >= 86400 ? TIME_FORMATS.minute : TIME_FORMATS.short;
    return splits.map(function (s) { return format(utc(s)); });
  }

  function utc(seconds) { return uPlot.tzDate(new Date(seconds * 1000), "Etc/UTC"); }
  Segue.utc = utc;

  function axisLabel(axis) {
    if (!axis) return "";
    var text = axis.label || "";
    if (axis.unit) text += " (" + axis.unit + ")";
    if (axis.time) text += " (UTC)";
    return text;
  }
  Segue.axisLabel = axisLabel;

  function formatNumber(v) {
    if (v == null || isNaN(v)) return "—";
    var a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
    if (Number.isInteger(v)) return v.toLocaleString("en-US");
    return Number(v.toPrecision(5)).toString();
  }
  Segue.formatNumber = formatNumber;

  function width(element) { return Math.max(element.clientWidth || element.parentNode.clientWidth || 300, 200); }

  function ema(values, weight) {
    var out = new Array(values.length), last = null;
    for (var i = 0; i < values.length; i++) {
      var v = values[i];
      if (v == null || !isFinite(v)) { out[i] = null; continue; }
      last = last == null ? v : last * weight + (1 - weight) * v;
      out[i] = last;
    }
    return out;
  }

  function drawLines(element, spec) {
    var series = (spec.series || []).filter(function (s) { return s.x && s.x.length; });
    if (!series.length) {
      element.innerHTML = "";
      var none = document.createElement("p");
      none.className = "chart-empty";
      none.textContent = spec.empty || "Nothing to draw yet.";
      element.appendChild(none);
      return;
    }
    var state = { log: !!(spec.y && spec.y.log), smooth: 0 };
    var holder = document.createElement("div");
    element.innerHTML = "";
    if (spec.controls) {
      var bar = document.createElement("div");
      bar.className = "chart-controls";
      var logLabel = document.createElement("label");
      var log = document.createElement("input");
      log.type = "checkbox"; log.checked = state.log; log.className = "chart-log";
      logLabel.appendChild(log); logLabel.appendChild(document.createTextNode(" log scale"));
      var smoothLabel = document.createElement("label");
      var smooth = document.createElement("input");
      smooth.type = "range"; smooth.min = "0"; smooth.max = "0.99"; smooth.step = "0.01"; smooth.value = "0";
      smooth.className = "chart-smoothing";
      var shown = document.createElement("span");
      shown.textContent = "0";
      smoothLabel.appendChild(document.createTextNode("smoothing "));
      smoothLabel.appendChild(smooth); smoothLabel.appendChild(shown);
      bar.appendChild(logLabel); bar.appendChild(smoothLabel);
      element.appendChild(bar);
      log.addEventListener("change", function () { state.log = log.checked; build(); });
      smooth.addEventListener("input", function () { state.smooth = +smooth.value; shown.textContent = smooth.value; build(); });
    }
    element.appendChild(holder);
    var joined = uPlot.join(series.map(function (s) { return [s.x, s.y]; }));
    var plot = null;

    function build() {
      var data = [joined[0]], defs = [{}];
      series.forEach(function (s, i) {
        var color = PALETTE[i % PALETTE.length];
        var values = joined[i + 1];
        if (state.log) values = values.map(function (v) { return v != null && v > 0 ? v : null; });
        if (state.smooth > 0) {
          data.push(values);
          defs.push({ label: s.label + " (raw)", stroke: color + "40", width: 1, spanGaps: true,
                      value: function (u, v) { return formatNumber(v); } });
          data.push(ema(values, state.smooth));
          defs.push({ label: s.label, stroke: color, width: 1.5, spanGaps: true,
                      value: function (u, v) { return formatNumber(v); } });
        } else {
          data.push(values);
          defs.push({ label: s.label, stroke: color, width: 1.5, spanGaps: true,
                      points: { show: joined[0].length < 60 },
                      value: function (u, v) { return formatNumber(v); } });
        }
      });
      var time = !!(spec.x && spec.x.time);
      var options = {
        width: width(element), height: spec.height || 260,
        tzDate: utc,
        scales: { x: { time: time }, y: { distr: state.log ? 3 : 1 } },
        series: defs,
        axes: [
          time ? { label: axisLabel(spec.x), labelSize: 22, size: 46, values: timeTicks }
               : { label: axisLabel(spec.x), labelSize: 22, size: 46, incrs: STEPS,
                   values: function (u, splits) { return splits.map(formatNumber); } },
          { label: axisLabel(spec.y), labelSize: 22, size: 64,
            values: function (u, splits) { return splits.map(formatNumber); } }
        ],
        legend: { live: true },
        cursor: { drag: { x: true, y: false } }
      };
      if (!time) defs[0].label = spec.x && spec.x.label || "x";
      else defs[0] = { label: "time (UTC)", value: "{YYYY}-{MM}-{DD} {HH}:{mm}:{ss}" };
      if (plot) plot.destroy();
      plot = new uPlot(options, data, holder);
      element._plot = plot;
    }
    build();
  }

  function drawBars(element, spec) {
    var series = spec.series || [];
    var categories = spec.x && spec.x.categories;
    var xs = [];
    if (categories) {
      for (var i = 0; i < categories.length; i++) xs.push(i);
    } else {
      for (var j = 0; j + 1 < (spec.edges || []).length; j++) xs.push((spec.edges[j] + spec.edges[j + 1]) / 2);
    }
    element.innerHTML = "";
    if (!xs.length || !series.length) {
      var none = document.createElement("p");
      none.className = "chart-empty";
      none.textContent = spec.empty || "Nothing to draw yet.";
      element.appendChild(none);
      return;
    }
    var n = series.length;
    // Bars of one bin side by side: each series' bars start at their own offset within the
    // bin (in x units, as uPlot's disp options take them), together 90% of the bin's width.
    var bin = categories ? 1 : (xs.length > 1 ? xs[1] - xs[0] : 1);
    var barWidth = 0.9 * bin / n;
    var data = [xs], defs = [{ label: spec.x && spec.x.label || "x",
      value: function (u, v) { return categories ? categories[v] : formatNumber(v); } }];
    series.forEach(function (s, k) {
      var color = s.color || PALETTE[k % PALETTE.length];
      var lefts = xs.map(function (x) { return x - 0.45 * bin + k * barWidth; });
      var widths = xs.map(function () { return barWidth; });
      data.push(s.y);
      defs.push({ label: s.label, stroke: color, fill: color + "b3", width: 1,
        paths: uPlot.paths.bars({ disp: {
          x0: { unit: 3, values: function () { return lefts; } },
          size: { unit: 3, values: function () { return widths; } } } }),
        points: { show: false },
        value: function (u, v) { return formatNumber(v); } });
    });
    var options = {
      width: width(element), height: spec.height || 220,
      scales: {
        x: { time: false, range: function (u, lo, hi) { return [lo - bin / 2, hi + bin / 2]; } },
        y: { range: function (u, lo, hi) { return [0, hi > 0 ? hi * 1.05 : 1]; } }
      },
      series: defs,
      axes: [
        { label: axisLabel(spec.x), labelSize: 22, size: categories ? 60 : 46,
          splits: categories ? function () { return xs; } : undefined,
          values: function (u, splits) {
            return splits.map(function (v) { return categories ? String(categories[v] != null ? categories[v] : "") : formatNumber(v); }); },
          rotate: categories && categories.length > 6 ? -30 : 0 },
        { label: axisLabel(spec.y), labelSize: 22, size: 60,
          values: function (u, splits) { return splits.map(formatNumber); } }
      ],
      legend: { live: true }
    };
    element._plot = new uPlot(options, data, element);
  }

  Segue.kinds.lines = drawLines;
  Segue.kinds.bars = drawBars;

  function draw(element) {
    var kind = element.getAttribute("data-chart");
    var source = document.getElementById(element.getAttribute("data-spec"));
    if (!source || !Segue.kinds[kind] || element._drawn) return;
    element._drawn = true;
    Segue.kinds[kind](element, JSON.parse(source.textContent));
  }

  Segue.drawCharts = function (root) {
    (root || document).querySelectorAll(".chart[data-chart]").forEach(draw);
  };

  var resizing = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizing);
    resizing = setTimeout(function () {
      document.querySelectorAll(".chart[data-chart]").forEach(function (element) {
        if (element._plot && element._plot.setSize) {
          element._plot.setSize({ width: width(element), height: element._plot.height });
        }
      });
    }, 150);
  });

  function init() {
    if (window.htmx) {
      // Errors are swapped in like any answer: they show where the request was made. A 4xx
      // (a refused filter, a gate that failed) is an answer the page shows, not a fault.
      htmx.config.responseHandling = [
        { code: "204", swap: false },
        { code: "[234]..", swap: true },
        { code: "5..", swap: true, error: true }
      ];
    }
    Segue.drawCharts(document);
  }
  document.addEventListener("DOMContentLoaded", init);
  document.addEventListener("htmx:afterSettle", function (event) { Segue.drawCharts(event.target); });
})();
