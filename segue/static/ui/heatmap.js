/* Segue's heat map: drift per feature (rows) per time bucket (columns), drawn on a canvas.
 *
 * Spec (segue.monitoring.charts.drift_heatmap):
 *   {"rows": ["age", ...], "times": [epoch s, ...], "width": seconds per bucket,
 *    "values": [[severity 0..1 or null, ...], ...],      one list per row
 *    "cells": [[{"test", "statistic", "p", "threshold", "n", "drifted"} or null, ...], ...],
 *    "x": {"label": "time", "time": true}, "y": {"label": "feature"},
 *    "legend": {"label", "low", "mid", "high"}, "empty": "..."}
 * Severity: 0 like the reference, 0.5 at the test's threshold, 1 far past it; null (blank
 * cell) when the bucket had no rows. Times are UTC. Hovering a cell shows its numbers.
 */
(function () {
  "use strict";
  var Segue = window.Segue = window.Segue || {};
  Segue.kinds = Segue.kinds || {};

  var STOPS = [[0, [232, 240, 250]], [0.3, [198, 219, 239]], [0.49, [253, 224, 139]],
               [0.5, [248, 150, 80]], [0.75, [215, 48, 39]], [1, [120, 10, 20]]];
  var ROW = 18, TOP = 8, BOTTOM = 46, FONT = "12px system-ui, sans-serif";

  function color(v) {
    for (var i = 1; i < STOPS.length; i++) {
      if (v <= STOPS[i][0]) {
        var a = STOPS[i - 1], b = STOPS[i], t = (v - a[0]) / ((b[0] - a[0]) || 1), c = [];
        for (var k = 0; k < 3; k++) c.push(Math.round(a[1][k] + (b[1][k] - a[1][k]) * t));
        return "rgb(" + c.join(",") + ")";
      }
    }
    return "rgb(120,10,20)";
  }

  function pad(n) { return n < 10 ? "0" + n : String(n); }
  function utcText(seconds, withDate) {
    var d = new Date(seconds * 1000);
    var time = pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
    if (!withDate) return time;
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " + time;
  }
  function fmt(v) { return Segue.formatNumber ? Segue.formatNumber(v) : String(v); }

  function fit(ctx, text, room) {
    if (ctx.measureText(text).width <= room) return text;
    while (text.length > 1 && ctx.measureText(text + "…").width > room) text = text.slice(0, -1);
    return text + "…";
  }

  function legend(spec) {
    var box = document.createElement("div");
    box.className = "heatmap-legend";
    var title = document.createElement("span");
    title.textContent = (spec.legend && spec.legend.label || "value") + ":";
    var bar = document.createElement("span");
    bar.className = "heatmap-scale";
    var stops = STOPS.map(function (s) { return color(s[0]) + " " + (s[0] * 100) + "%"; });
    bar.style.background = "linear-gradient(to right, " + stops.join(", ") + ")";
    var labels = document.createElement("span");
    labels.className = "heatmap-scale-labels";
    ["low", "mid", "high"].forEach(function (key) {
      var part = document.createElement("span");
      part.textContent = spec.legend && spec.legend[key] || key;
      labels.appendChild(part);
    });
    var scale = document.createElement("span");
    scale.className = "heatmap-scale-box";
    scale.appendChild(bar); scale.appendChild(labels);
    var blank = document.createElement("span");
    blank.className = "heatmap-blank";
    blank.textContent = "blank: no rows in that bucket";
    box.appendChild(title); box.appendChild(scale); box.appendChild(blank);
    return box;
  }

  function tooltipText(spec, r, c) {
    var cell = spec.cells[r][c], start = spec.times[c];
    var lines = [spec.rows[r], utcText(start, true) + " – " + utcText(start + spec.width, false) + " UTC"];
    if (!cell) { lines.push("no rows in this bucket"); return lines.join("\n"); }
    lines.push(cell.test + " statistic " + fmt(cell.statistic) +
               (cell.p != null ? ", p-value " + fmt(cell.p) : "") +
               " (threshold " + fmt(cell.threshold) + ")");
    lines.push(fmt(cell.n) + " rows · " + (cell.drifted ? "DRIFT" : "no drift"));
    return lines.join("\n");
  }

  function drawHeatmap(element, spec) {
    element.innerHTML = "";
    var rows = spec.rows || [], times = spec.times || [];
    if (!rows.length || !times.length) {
      var none = document.createElement("p");
      none.className = "chart-empty";
      none.textContent = spec.empty || "Nothing to draw yet.";
      element.appendChild(none);
      return;
    }
    element.classList.add("heatmap");
    var canvas = document.createElement("canvas");
    var tip = document.createElement("div");
    tip.className = "heatmap-tip";
    tip.hidden = true;
    element.appendChild(canvas);
    element.appendChild(tip);
    element.appendChild(legend(spec));
    var layout = {};

    function paint() {
      tip.hidden = true;
      var total = Math.max(element.clientWidth || 300, 240);
      var height = TOP + rows.length * ROW + BOTTOM;
      var ratio = window.devicePixelRatio || 1;
      canvas.width = Math.round(total * ratio);
      canvas.height = Math.round(height * ratio);
      canvas.style.width = total + "px";
      canvas.style.height = height + "px";
      var ctx = canvas.getContext("2d");
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.font = FONT;
      var widest = 0;
      rows.forEach(function (name) { widest = Math.max(widest, ctx.measureText(name).width); });
      var left = Math.min(Math.ceil(widest) + 30, Math.round(total * 0.4));
      var plotWidth = total - left - 8, cellWidth = plotWidth / times.length;
      layout = { left: left, cellWidth: cellWidth, total: total };
      ctx.clearRect(0, 0, total, height);
      for (var r = 0; r < rows.length; r++) {
        for (var c = 0; c < times.length; c++) {
          var v = spec.values[r][c];
          if (v == null) continue;
          ctx.fillStyle = color(v);
          ctx.fillRect(left + c * cellWidth, TOP + r * ROW, Math.max(cellWidth - 1, 1), ROW - 1);
        }
      }
      ctx.strokeStyle = "#d9dde5";
      ctx.strokeRect(left - 0.5, TOP - 0.5, plotWidth + 1, rows.length * ROW + 1);
      ctx.fillStyle = "#1d2330";
      ctx.textAlign = "right"; ctx.textBaseline = "middle";
      rows.forEach(function (name, i) { ctx.fillText(fit(ctx, name, left - 30), left - 6, TOP + i * ROW + ROW / 2); });
      // x ticks: at most one label per 90 px, dates when the window spans days
      // Dates on the labels when the window crosses a UTC midnight, times alone otherwise.
      var days = Math.floor(times[0] / 86400) !== Math.floor((times[times.length - 1] + spec.width - 1) / 86400);
      var room = ctx.measureText(utcText(times[0], days)).width + 16;
      var every = Math.max(1, Math.ceil(room / cellWidth));
      ctx.textAlign = "center"; ctx.textBaseline = "top";
      var axisY = TOP + rows.length * ROW;
      var lastEnd = -Infinity;
      for (var k = 0; k < times.length; k += every) {
        var x = left + k * cellWidth;
        ctx.fillRect(x, axisY, 1, 4);
        var text = utcText(times[k], days), size = ctx.measureText(text).width;
        // Left-aligned at its tick, kept inside the canvas, never over the previous label.
        var at = Math.min(x, total - 2 - size);
        if (at < lastEnd + 8) continue;
        ctx.textAlign = "left";
        ctx.fillText(text, at, axisY + 6);
        lastEnd = at + size;
      }
      ctx.textAlign = "center";
      ctx.fillStyle = "#5c6577";
      ctx.fillText((spec.x && spec.x.label || "time") + " (UTC, each column " + bucketText(spec.width) + ")",
                   left + plotWidth / 2, axisY + 26);
      ctx.save();
      ctx.translate(10, TOP + rows.length * ROW / 2);
      ctx.rotate(-Math.PI / 2);
      ctx.textBaseline = "middle";
      ctx.fillText(spec.y && spec.y.label || "feature", 0, 0);
      ctx.restore();
    }

    function bucketText(seconds) {
      if (seconds % 86400 === 0) return seconds / 86400 + " d";
      if (seconds % 3600 === 0) return seconds / 3600 + " h";
      if (seconds % 60 === 0) return seconds / 60 + " min";
      return seconds + " s";
    }

    canvas.addEventListener("mousemove", function (event) {
      var box = canvas.getBoundingClientRect();
      var x = event.clientX - box.left, y = event.clientY - box.top;
      var c = Math.floor((x - layout.left) / layout.cellWidth), r = Math.floor((y - TOP) / ROW);
      if (c < 0 || c >= times.length || r < 0 || r >= rows.length) { tip.hidden = true; return; }
      tip.textContent = tooltipText(spec, r, c);
      tip.hidden = false;
      var left = Math.min(x + 14, layout.total - tip.offsetWidth - 4);
      tip.style.left = Math.max(left, 0) + "px";
      tip.style.top = (y + 14) + "px";
    });
    canvas.addEventListener("mouseleave", function () { tip.hidden = true; });
    paint();
    // segue.js resizes charts through element._plot.setSize.
    element._plot = { height: 0, setSize: function () { paint(); } };
  }

  Segue.kinds.heatmap = drawHeatmap;
})();
