// MegaRouter dashboard charts: small SVG charts drawn with DOM calls only (no innerHTML, no library),
// so every label is text, never markup, and the Content-Security-Policy needs no inline styles.
// Each drawn series is an element of class "series" carrying data-name and data-points (tests read them).
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
    "#ff9da7", "#9c755f", "#bab0ac"];
  const HEIGHT = 230;
  const PAD = { left: 64, right: 12, top: 12, bottom: 30 };

  function svgEl(tag, attrs, parent) {
    const node = document.createElementNS(NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (parent) parent.appendChild(node);
    return node;
  }

  function titled(node, text) {
    const title = svgEl("title", {}, node);
    title.textContent = text;
    return node;
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
  }

  function empty(el, message) {
    clear(el);
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = message;
    el.appendChild(p);
  }

  function frame(el, kind) {
    clear(el);
    const width = Math.max(320, el.clientWidth || 600);
    const svg = svgEl("svg", { class: "chart", "data-chart": kind, viewBox: `0 0 ${width} ${HEIGHT}`,
      width: "100%", height: HEIGHT, role: "img" });
    el.appendChild(svg);
    return { svg, width, plotW: width - PAD.left - PAD.right, plotH: HEIGHT - PAD.top - PAD.bottom };
  }

  // A round top for the y axis; for counts (`whole`), one whose quarters are whole numbers.
  function niceMax(value, whole) {
    if (whole) return Math.max(4, Math.ceil(value / 4) * 4);
    if (!(value > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
    return 10 * power;
  }

  function yAxis(f, max, format, min) {
    const low = min || 0;
    for (let i = 0; i <= 4; i++) {
      const value = low + ((max - low) * i) / 4;
      const y = PAD.top + f.plotH - (f.plotH * i) / 4;
      svgEl("line", { x1: PAD.left, x2: PAD.left + f.plotW, y1: y, y2: y, class: "grid" }, f.svg);
      const label = svgEl("text", { x: PAD.left - 6, y: y + 4, "text-anchor": "end", class: "tick" }, f.svg);
      label.textContent = format(value);
    }
  }

  function xLabels(f, labels, xOf) {
    const every = Math.max(1, Math.ceil(labels.length / Math.max(1, Math.floor(f.plotW / 90))));
    labels.forEach((text, i) => {
      if (i % every !== 0) return;
      const label = svgEl("text", { x: xOf(i), y: HEIGHT - 10, "text-anchor": "middle", class: "tick" }, f.svg);
      label.textContent = text;
    });
  }

  function legend(el, names) {
    const list = document.createElement("ul");
    list.className = "legend";
    names.forEach((name, i) => {
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = PALETTE[i % PALETTE.length];
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(name));
      list.appendChild(item);
    });
    el.appendChild(list);
  }

  // Stacked bars: one bar per x, one colored segment per series.
  function stacked(el, { labels, series, format, whole }) {
    if (!labels.length || !series.length) return empty(el, "no data in this range");
    const f = frame(el, "stacked");
    const totals = labels.map((_, i) => series.reduce((sum, s) => sum + (s.values[i] || 0), 0));
    const max = niceMax(Math.max(...totals), whole);
    yAxis(f, max, format);
    const slot = f.plotW / labels.length;
    const barW = Math.max(2, slot * 0.7);
    const xOf = (i) => PAD.left + slot * i + slot / 2;
    const base = labels.map(() => 0);
    series.forEach((s, k) => {
      const group = svgEl("g", { class: "series", "data-name": s.name, fill: PALETTE[k % PALETTE.length] }, f.svg);
      let points = 0;
      s.values.forEach((value, i) => {
        if (!(value > 0)) return;
        const h = (f.plotH * value) / max;
        const y = PAD.top + f.plotH - (f.plotH * base[i]) / max - h;
        titled(svgEl("rect", { x: xOf(i) - barW / 2, y, width: barW, height: Math.max(1, h) }, group),
          `${s.name} · ${labels[i]}: ${format(value)}`);
        base[i] += value;
        points += 1;
      });
      group.setAttribute("data-points", String(points));
    });
    xLabels(f, labels, xOf);
    legend(el, series.map((s) => s.name));
  }

  // Lines: one polyline per series; null values break nothing (the point is skipped). With `zoom`, the
  // y axis spans the values' own range instead of starting at zero (small moves on a large balance).
  function lines(el, { labels, series, format, zoom, whole }) {
    const drawn = series.filter((s) => s.values.some((v) => v !== null && v !== undefined));
    if (!labels.length || !drawn.length) return empty(el, "no data in this range");
    const f = frame(el, "lines");
    const values = drawn.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined));
    let min = 0;
    let max = niceMax(Math.max(...values), whole);
    if (zoom) {
      const low = Math.min(...values);
      const high = Math.max(...values);
      const pad = Math.max((high - low) * 0.1, Math.abs(high) * 1e-6, 1);
      min = low - pad;
      max = high + pad;
    }
    yAxis(f, max, format, min);
    const xOf = (i) => PAD.left + (labels.length === 1 ? f.plotW / 2 : (f.plotW * i) / (labels.length - 1));
    const yOf = (v) => PAD.top + f.plotH - (f.plotH * (v - min)) / (max - min);
    drawn.forEach((s, k) => {
      const color = PALETTE[k % PALETTE.length];
      const group = svgEl("g", { class: "series", "data-name": s.name }, f.svg);
      const coords = [];
      s.values.forEach((v, i) => {
        if (v === null || v === undefined) return;
        coords.push(`${xOf(i).toFixed(1)},${yOf(v).toFixed(1)}`);
        titled(svgEl("circle", { cx: xOf(i), cy: yOf(v), r: 3, fill: color }, group),
          `${s.name} · ${labels[i]}: ${format(v)}`);
      });
      svgEl("polyline", { points: coords.join(" "), fill: "none", stroke: color, "stroke-width": 2 }, group);
      group.setAttribute("data-points", String(coords.length));
    });
    xLabels(f, labels, xOf);
    legend(el, drawn.map((s) => s.name));
  }

  // Horizontal bars: one per item, longest first.
  function hbars(el, { items, format }) {
    if (!items.length) return empty(el, "nothing to show");
    clear(el);
    const rowH = 22;
    const width = Math.max(320, el.clientWidth || 600);
    const labelW = Math.min(300, width * 0.45);
    const height = items.length * rowH + 8;
    const svg = svgEl("svg", { class: "chart", "data-chart": "hbars", viewBox: `0 0 ${width} ${height}`,
      width: "100%", height, role: "img" });
    el.appendChild(svg);
    const max = Math.max(...items.map((it) => Math.abs(it.value))) || 1;
    const group = svgEl("g", { class: "series", "data-name": "items", "data-points": items.length }, svg);
    items.forEach((it, i) => {
      const y = 4 + i * rowH;
      const label = svgEl("text", { x: labelW - 6, y: y + 14, "text-anchor": "end", class: "tick" }, group);
      label.textContent = it.label.length > 44 ? it.label.slice(0, 20) + "…" + it.label.slice(-22) : it.label;
      const w = ((width - labelW - 90) * Math.abs(it.value)) / max;
      titled(svgEl("rect", { x: labelW, y: y + 3, width: Math.max(1, w), height: rowH - 8,
        fill: it.color || PALETTE[0] }, group), `${it.label}: ${format(it.value)}`);
      const value = svgEl("text", { x: labelW + Math.max(1, w) + 6, y: y + 14, class: "tick" }, group);
      value.textContent = format(it.value);
    });
  }

  // Scatter: points over time, one colored series per group.
  function scatter(el, { points, format, xFormat }) {
    if (!points.length) return empty(el, "no requests yet");
    const f = frame(el, "scatter");
    const xs = points.map((p) => p.x);
    const minX = Math.min(...xs);
    const spanX = Math.max(1, Math.max(...xs) - minX);
    const max = niceMax(Math.max(...points.map((p) => p.y)));
    yAxis(f, max, format);
    const xOf = (x) => PAD.left + (f.plotW * (x - minX)) / spanX;
    const names = [...new Set(points.map((p) => p.group))];
    names.forEach((name, k) => {
      const mine = points.filter((p) => p.group === name);
      const group = svgEl("g", { class: "series", "data-name": name, "data-points": mine.length,
        fill: PALETTE[k % PALETTE.length] }, f.svg);
      mine.forEach((p) => titled(svgEl("circle", { cx: xOf(p.x), cy: PAD.top + f.plotH - (f.plotH * p.y) / max,
        r: 3.5 }, group), `${name}: ${format(p.y)} (${p.label || ""})`));
    });
    const ticks = [minX, minX + spanX / 2, minX + spanX];
    ticks.forEach((x) => {
      const label = svgEl("text", { x: xOf(x), y: HEIGHT - 10, "text-anchor": "middle", class: "tick" }, f.svg);
      label.textContent = xFormat(x);
    });
    legend(el, names);
  }

  window.MRCharts = { stacked, lines, hbars, scatter, empty, PALETTE };
})();
