// A stacked bar chart as plain SVG, drawn here (no library, nothing from a CDN: the CSP is script-src 'self').
// Colours are SVG presentation attributes, not inline styles, so style-src 'self' holds too.

const NS = "http://www.w3.org/2000/svg";
export const PALETTE = ["#0b5cad", "#1a7f37", "#bf8700", "#8250df", "#cf222e", "#1b7c83", "#953800", "#57606a"];

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) node.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A small coloured square for a legend entry. */
export function swatch(colour) {
  return svg("svg", { class: "swatch", viewBox: "0 0 10 10", width: 10, height: 10, "aria-hidden": "true" },
    svg("rect", { width: 10, height: 10, fill: colour }));
}

/**
 * Draw `buckets` ([{key, label, values: {series: micros}}]) as stacked bars.
 * `series` is [{key, label, colour}], `format(micros)` labels amounts, `onSelect(bucket)` (optional)
 * makes every bar a button (click, Enter or Space).
 */
export function barChart(container, { buckets, series, format, onSelect, describe }) {
  const width = 760;
  const height = 260;
  const left = 64;
  const bottom = 28;
  const top = 10;
  const plotHeight = height - top - bottom;
  const plotWidth = width - left - 8;
  const totals = buckets.map((b) => Object.values(b.values).reduce((a, v) => a + v, 0));
  const max = Math.max(1, ...totals);
  const step = plotWidth / Math.max(1, buckets.length);
  const barWidth = Math.max(2, Math.min(40, step * 0.7));
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": describe || "Usage chart" });
  // Axes and the top value.
  root.append(
    svg("line", { class: "axis", x1: left, y1: top, x2: left, y2: top + plotHeight }),
    svg("line", { class: "axis", x1: left, y1: top + plotHeight, x2: width - 8, y2: top + plotHeight }),
    svg("text", { x: left - 6, y: top + 10, "text-anchor": "end" }, format(max)),
    svg("text", { x: left - 6, y: top + plotHeight, "text-anchor": "end" }, format(0)));
  const labelEvery = Math.max(1, Math.ceil(buckets.length / 12));
  buckets.forEach((bucket, index) => {
    const x = left + index * step + (step - barWidth) / 2;
    let y = top + plotHeight;
    const bar = svg("g", { class: "bar", "data-key": bucket.key, "data-total": totals[index] });
    const lines = [`${bucket.label}: ${format(totals[index])}`];
    for (const s of series) {
      const value = bucket.values[s.key] || 0;
      if (!value) continue;
      const h = (value / max) * plotHeight;
      y -= h;
      bar.append(svg("rect", { x: x.toFixed(2), y: y.toFixed(2), width: barWidth.toFixed(2), height: Math.max(h, 0.5).toFixed(2),
        fill: s.colour, "data-series": s.key }));
      lines.push(`${s.label}: ${format(value)}`);
    }
    // An invisible full-height target so empty and tiny bars can be hovered and clicked too.
    bar.prepend(svg("rect", { x: x.toFixed(2), y: top, width: barWidth.toFixed(2), height: plotHeight, fill: "transparent" }));
    bar.append(svg("title", {}, lines.join("\n")));
    if (onSelect) {
      bar.setAttribute("role", "button");
      bar.setAttribute("tabindex", "0");
      bar.setAttribute("aria-label", `${lines.join(", ")}. Show hour by hour.`);
      bar.addEventListener("click", () => onSelect(bucket));
      bar.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          onSelect(bucket);
        }
      });
    }
    root.append(bar);
    if (index % labelEvery === 0) {
      root.append(svg("text", { x: (x + barWidth / 2).toFixed(2), y: height - 10, "text-anchor": "middle" }, bucket.short || bucket.label));
    }
  });
  container.replaceChildren(root);
}
