// hurtle dashboard charts: line charts and a flame graph, drawn as SVG.
// Every label goes in as text (textContent), never as markup.
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#2f6fdb", "#d9534f", "#3a9d5d", "#c98a16", "#8a4fd0", "#1b9aaa"];

  function svg(tag, attrs, text) {
    const node = document.createElementNS(NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text != null) node.textContent = String(text);
    return node;
  }

  function clock(at) {
    const d = new Date(at * 1000);
    return d.toTimeString().slice(0, 5);
  }

  // times: unix seconds; series: [{name, values}] (null: no value); marks: [{at, text}].
  function line(opts) {
    const W = opts.width || 600, H = opts.height || 140, L = 44, R = 8, T = 18, B = 18;
    const times = opts.times || [];
    const root = svg("svg", {viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img"});
    if (opts.title) root.append(svg("text", {x: L, y: 12, class: "chart-title"}, opts.title));
    if (times.length < 2) {
      root.append(svg("text", {x: W / 2, y: H / 2, class: "chart-empty", "text-anchor": "middle"}, "no data yet"));
      return root;
    }
    const t0 = times[0], t1 = times[times.length - 1];
    let top = 0;
    for (const s of opts.series) for (const v of s.values) if (v != null && v > top) top = v;
    if (top <= 0) top = 1;
    const x = (t) => L + (W - L - R) * (t - t0) / (t1 - t0 || 1);
    const y = (v) => H - B - (H - T - B) * v / top;
    root.append(svg("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis"}));
    root.append(svg("line", {x1: L, y1: T, x2: L, y2: H - B, class: "axis"}));
    const fmt = opts.format || ((v) => (Math.round(v * 100) / 100).toString());
    root.append(svg("text", {x: L - 4, y: T + 4, class: "tick", "text-anchor": "end"}, fmt(top)));
    root.append(svg("text", {x: L - 4, y: H - B, class: "tick", "text-anchor": "end"}, "0"));
    root.append(svg("text", {x: L, y: H - 4, class: "tick"}, clock(t0)));
    root.append(svg("text", {x: W - R, y: H - 4, class: "tick", "text-anchor": "end"}, clock(t1)));
    for (const mark of opts.marks || []) {
      // Times are minutes' starts: a deploy in the current minute is drawn at its start.
      if (mark.at < t0 || mark.at >= t1 + 60) continue;
      const at = x(Math.min(mark.at, t1));
      const g = svg("g", {class: "deploy"});
      g.append(svg("title", {}, `deploy: ${mark.text}`));
      g.append(svg("line", {x1: at, y1: T, x2: at, y2: H - B}));
      g.append(svg("text", {x: at - 3, y: T + 10, class: "tick", "text-anchor": "end"}, mark.text));
      root.append(g);
    }
    opts.series.forEach((s, i) => {
      const color = s.color || COLORS[i % COLORS.length];
      let d = "";
      let pen = false;
      s.values.forEach((v, j) => {
        if (v == null || j >= times.length) { pen = false; return; }
        d += `${pen ? "L" : "M"}${x(times[j]).toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
      });
      const path = svg("path", {d, fill: "none", stroke: color, "stroke-width": 1.6});
      path.append(svg("title", {}, s.name));
      root.append(path);
      // A value with none beside it draws no line: a dot shows it.
      s.values.forEach((v, j) => {
        if (v == null || j >= times.length || s.values[j - 1] != null || s.values[j + 1] != null) return;
        root.append(svg("circle", {cx: x(times[j]).toFixed(1), cy: y(v).toFixed(1), r: 2.5, fill: color}));
      });
      root.append(svg("text", {x: W - R - 110 * (opts.series.length - i), y: 12, fill: color, class: "legend"},
        s.name));
    });
    return root;
  }

  function spark(values) {
    const W = 120, H = 24;
    const root = svg("svg", {viewBox: `0 0 ${W} ${H}`, class: "spark"});
    const top = Math.max(1, ...values.map((v) => v || 0));
    const step = W / Math.max(1, values.length - 1);
    const d = values.map((v, i) => `${i ? "L" : "M"}${(i * step).toFixed(1)},${(H - 2 - (H - 4) * (v || 0) / top).toFixed(1)}`).join("");
    root.append(svg("path", {d, fill: "none", stroke: COLORS[0], "stroke-width": 1.2}));
    return root;
  }

  // stacks: [[frames root first], microseconds]. Click a frame to zoom into it; click the top bar to zoom out.
  function flame(stacks, onZoom) {
    const tree = {name: "all", value: 0, children: new Map()};
    for (const [frames, time] of stacks) {
      let node = tree;
      node.value += time;
      for (const name of frames) {
        let child = node.children.get(name);
        if (!child) { child = {name, value: 0, children: new Map(), parent: node}; node.children.set(name, child); }
        child.value += time;
        node = child;
      }
    }
    return draw(tree, tree, onZoom);
  }

  function depth(node) {
    let most = 0;
    for (const child of node.children.values()) most = Math.max(most, depth(child));
    return most + 1;
  }

  function draw(tree, focus, onZoom) {
    const W = 1000, ROW = 18;
    const rows = depth(focus);
    const H = rows * ROW;
    const root = svg("svg", {viewBox: `0 0 ${W} ${H}`, class: "flame", width: "100%"});
    const redraw = (node) => { const next = draw(tree, node, onZoom); root.replaceWith(next); if (onZoom) onZoom(node); };
    function place(node, x0, level, width) {
      if (width < 0.5) return;
      const g = svg("g", {class: "frame"});
      const share = (100 * node.value / (tree.value || 1)).toFixed(1);
      g.append(svg("title", {}, `${node.name}: ${(node.value / 1000).toFixed(1)} ms, ${share}%`));
      const hue = 20 + (hash(node.name) % 40);
      g.append(svg("rect", {x: x0, y: level * ROW, width: Math.max(0, width - 0.5), height: ROW - 1,
        fill: `hsl(${hue}, 80%, ${60 + (hash(node.name) % 15)}%)`}));
      if (width > 30) {
        const chars = Math.floor(width / 7);
        const label = node.name.length > chars ? node.name.slice(0, chars - 1) + "…" : node.name;
        g.append(svg("text", {x: x0 + 3, y: level * ROW + 13}, label));
      }
      g.addEventListener("click", () => redraw(node === focus && node.parent ? node.parent : node));
      root.append(g);
      let at = x0;
      for (const child of [...node.children.values()].sort((a, b) => a.name < b.name ? -1 : 1)) {
        const w = width * child.value / (node.value || 1);
        place(child, at, level + 1, w);
        at += w;
      }
    }
    place(focus, 0, 0, W);
    return root;
  }

  function hash(text) {
    let h = 0;
    for (let i = 0; i < text.length; i++) h = (h * 31 + text.charCodeAt(i)) | 0;
    return Math.abs(h);
  }

  window.HurtleChart = {line, spark, flame};
})();
