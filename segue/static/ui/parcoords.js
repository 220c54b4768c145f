/* Parallel coordinates on a canvas: Segue.kinds.parcoords(element, spec).
 *
 * spec: {"runs": ["run a", ...],
 *        "axes": [{"label": "C", "type": "number", "values": [0.1, 1, ...]},
 *                 {"label": "model", "type": "category", "categories": ["lr", "rf"], "values": ["rf", ...]},
 *                 {"label": "roc_auc", "type": "number", "values": [...], "metric": true}],
 *        "color": {"label": "roc_auc", "values": [...]} | null, "height": 320, "empty": "..."}
 * One vertical axis per entry (ticks and labels drawn), one line per run colored by the
 * metric (light to dark blue, legend below); runs without the metric are drawn grey.
 */
(function () {
  "use strict";
  var Segue = window.Segue = window.Segue || {};
  Segue.kinds = Segue.kinds || {};
  var LOW = [198, 219, 239], HIGH = [8, 48, 107], NONE = "#b0b4bc";

  function mix(t) {
    var c = LOW.map(function (low, i) { return Math.round(low + (HIGH[i] - low) * t); });
    return "rgb(" + c.join(",") + ")";
  }
  function fmt(v) { return Segue.formatNumber ? Segue.formatNumber(v) : String(v); }
  function extent(values) {
    var lo = Infinity, hi = -Infinity;
    values.forEach(function (v) { if (v != null && isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
    if (lo === Infinity) return [0, 1];
    if (lo === hi) { lo -= 0.5; hi += 0.5; }
    return [lo, hi];
  }
  function ticks(lo, hi, n) {
    var step = (hi - lo) / (n - 1), out = [];
    for (var i = 0; i < n; i++) out.push(lo + step * i);
    return out;
  }

  function draw(element, spec) {
    element.innerHTML = "";
    var axes = spec.axes || [];
    if (axes.length < 2 || !(spec.runs || []).length) {
      var none = document.createElement("p");
      none.className = "chart-empty";
      none.textContent = spec.empty || "Nothing to draw yet.";
      element.appendChild(none);
      return;
    }
    // Axes stay at least 110 px apart: on a narrow screen the chart scrolls sideways.
    var width = Math.max(element.clientWidth || 300, 110 * (axes.length - 1) + 110);
    var height = spec.height || 320;
    var canvas = document.createElement("canvas");
    var ratio = window.devicePixelRatio || 1;
    canvas.width = width * ratio; canvas.height = height * ratio;
    canvas.style.width = width + "px"; canvas.style.height = height + "px";
    canvas.className = "parcoords-canvas";
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", "parallel coordinates of " + axes.map(function (a) { return a.label; }).join(", "));
    element.appendChild(canvas);
    var ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    // A run without a value on an axis crosses it at "none", below the axis, so every run
    // stays one unbroken line.
    var top = 34, bottom = height - 44, noneY = height - 18, left = 48, right = width - 56;
    var gap = (right - left) / (axes.length - 1);
    var scales = axes.map(function (axis) {
      if (axis.type === "category") {
        var cats = axis.categories || [];
        return function (v) {
          var i = cats.indexOf(v);
          return cats.length < 2 ? (top + bottom) / 2 : bottom - (bottom - top) * i / (cats.length - 1);
        };
      }
      var e = extent(axis.values);
      axis._extent = e;
      return function (v) { return v == null ? noneY : bottom - (bottom - top) * (v - e[0]) / (e[1] - e[0]); };
    });
    var colors = spec.color ? spec.color.values : [];
    var ce = extent(colors);
    // Lines first (lowest metric first so the best lie on top), then the axes over them.
    var order = spec.runs.map(function (_, i) { return i; });
    order.sort(function (a, b) { return (colors[a] == null ? -Infinity : colors[a]) - (colors[b] == null ? -Infinity : colors[b]); });
    ctx.lineWidth = 2;
    order.forEach(function (r) {
      var c = colors[r];
      ctx.strokeStyle = c == null ? NONE : mix((c - ce[0]) / (ce[1] - ce[0]));
      ctx.beginPath();
      var started = false;
      axes.forEach(function (axis, k) {
        var y = scales[k](axis.values[r]);
        var x = left + gap * k;
        if (started) ctx.lineTo(x, y); else ctx.moveTo(x, y);
        started = true;
      });
      ctx.stroke();
    });
    ctx.font = "12px system-ui, sans-serif";
    axes.forEach(function (axis, k) {
      var x = left + gap * k;
      ctx.strokeStyle = "#5c6577"; ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, bottom); ctx.stroke();
      ctx.fillStyle = "#1d2330"; ctx.textAlign = k === 0 ? "left" : k === axes.length - 1 ? "right" : "center";
      ctx.font = (axis.metric ? "bold " : "") + "12px system-ui, sans-serif";
      ctx.fillText(axis.label, k === 0 ? x - 6 : k === axes.length - 1 ? x + 6 : x, top - 16);
      ctx.font = "11px system-ui, sans-serif";
      ctx.textAlign = "right";
      ctx.fillStyle = "#5c6577";
      var labels = axis.type === "category" ? (axis.categories || []).map(function (c, i) { return [c, i]; })
        : ticks(axis._extent[0], axis._extent[1], 5).map(function (v) { return [v, v]; });
      if (axis.type !== "category" && axis.values.some(function (v) { return v == null; })) {
        ctx.fillText("none", x - 5, noneY + 4);
        ctx.beginPath(); ctx.arc(x, noneY, 2, 0, 2 * Math.PI); ctx.fill();
      }
      labels.forEach(function (pair) {
        var y = axis.type === "category" ? scales[k](pair[0]) : scales[k](pair[1]);
        var text = axis.type === "category" ? String(pair[0]) : fmt(pair[0]);
        if (text.length > 14) text = text.slice(0, 13) + "…";
        ctx.beginPath(); ctx.moveTo(x - 3, y); ctx.lineTo(x, y); ctx.stroke();
        ctx.fillText(text, x - 5, y + 4);
      });
    });
    if (spec.color) element.appendChild(legend(spec.color.label, ce));
    element._plot = { height: height, setSize: function () { element._drawn = false; draw(element, spec); } };
  }

  function legend(label, e) {
    var box = document.createElement("div");
    box.className = "parcoords-legend";
    var name = document.createElement("span");
    name.textContent = label + ":";
    var lo = document.createElement("span");
    lo.textContent = fmt(e[0]);
    var bar = document.createElement("span");
    bar.className = "parcoords-ramp";
    bar.style.background = "linear-gradient(to right, " + mix(0) + ", " + mix(1) + ")";
    var hi = document.createElement("span");
    hi.textContent = fmt(e[1]);
    var missing = document.createElement("span");
    missing.className = "muted";
    missing.textContent = "grey: no value";
    [name, lo, bar, hi, missing].forEach(function (el) { box.appendChild(el); });
    return box;
  }

  Segue.kinds.parcoords = draw;
})();
