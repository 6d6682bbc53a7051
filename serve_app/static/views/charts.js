// Live charts, drawn as plain SVG: completed jobs per minute, queued jobs by priority, pool
// sizes and pool utilisation (calls in flight / capacity, where the workers report it).

import { api } from "../api.js";
import { $, byTest, svg } from "../dom.js";

const W = 600;
const H = 180;
const PAD = { left: 44, right: 8, top: 18, bottom: 26 };

/** Vertical bars; each `rect` carries data-label and data-value for tests and tooltips. */
export function bars(target, points, { max, format = String, labelEvery = 1, empty = "no data" } = {}) {
  const top = Math.max(max ?? 0, 1, ...points.map((p) => p.value ?? 0));
  const width = (W - PAD.left - PAD.right) / Math.max(points.length, 1);
  const scale = (v) => ((H - PAD.top - PAD.bottom) * v) / top;
  const nodes = [
    svg("line", { x1: PAD.left, y1: H - PAD.bottom, x2: W - PAD.right, y2: H - PAD.bottom, class: "axis" }),
    svg("text", { x: PAD.left - 6, y: PAD.top + 8, class: "tick", "text-anchor": "end", text: format(top) }),
    svg("text", { x: PAD.left - 6, y: H - PAD.bottom, class: "tick", "text-anchor": "end", text: "0" }),
  ];
  points.forEach((p, i) => {
    const known = p.value !== null && p.value !== undefined;
    const h = known ? scale(p.value) : 0;
    const x = PAD.left + i * width + width * 0.12;
    const rect = svg("rect", { x, y: H - PAD.bottom - h, width: width * 0.76, height: Math.max(h, 0),
      class: known ? "bar" : "bar unknown", "data-label": p.label, "data-value": known ? String(p.value) : "" });
    rect.append(svg("title", { text: `${p.label}: ${known ? format(p.value) : "not reported"}` }));
    nodes.push(rect);
    if (known && points.length <= 12) {
      nodes.push(svg("text", { x: x + width * 0.38, y: H - PAD.bottom - h - 3, class: "val",
        "text-anchor": "middle", text: format(p.value) }));
    }
    if (i % labelEvery === 0) {
      nodes.push(svg("text", { x: x + width * 0.38, y: H - 8, class: "tick", "text-anchor": "middle",
        text: p.short ?? p.label }));
    }
  });
  const known = points.some((p) => p.value !== null && p.value !== undefined);
  if (!known) nodes.push(svg("text", { x: W / 2, y: H / 2, class: "tick", "text-anchor": "middle", text: empty }));
  target.replaceChildren(...nodes);
}

const minute = (iso) => new Date(iso).toLocaleTimeString([], { hour12: false, hour: "2-digit", minute: "2-digit" });
const pct = (v) => `${Math.round(v * 100)}%`;

export function chartsView({ onError }) {
  async function load() {
    try {
      const c = await api.charts();
      bars(byTest("chart-completed"), c.completed_per_minute.map((m) => ({
        label: m.minute, short: minute(m.minute), value: m.count })), { labelEvery: 5 });
      bars(byTest("chart-queue"), Object.entries(c.queue_by_priority).map(([p, n]) => ({
        label: `priority ${p}`, short: p, value: n })));
      const pools = c.pools.map((p) => ({ label: p.name, short: p.name.replace("_", " "), value: p.size }));
      bars(byTest("chart-pool-size"), pools, { empty: "no ingest worker reports its pools" });
      bars(byTest("chart-pool-util"), c.pools.map((p) => ({ label: p.name, short: p.name.replace("_", " "),
        value: p.utilisation })), { max: 1, format: pct,
        empty: c.pools.length ? "the ingest workers do not report calls in flight per pool"
          : "no ingest worker reports its pools" });
      $("charts-updated").textContent = `updated ${new Date(c.at).toLocaleTimeString([], { hour12: false })}` +
        (c.sampled ? " · counted over the newest 1000 jobs" : "");
    } catch (error) {
      onError(error);
    }
  }
  return { show: load, tick: load };
}
