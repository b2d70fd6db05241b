// Inline SVG charts drawn from numbers (no library, no CDN: the CSP allows neither). Each chart carries a
// <title> and <desc> in words, so it reads as an image with a summary.
const NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function frame(width, height, title, desc) {
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
  svg.append(svgEl("title", {}, title), svgEl("desc", {}, desc));
  return svg;
}

// Vertical bars, one per label; each series is stacked in order. series: [{name, cls, values}]
export function barChart(labels, series, { title, format = String } = {}) {
  const W = 480, H = 220, left = 64, bottom = 28, top = 10;
  const totals = labels.map((_, i) => series.reduce((sum, s) => sum + (s.values[i] || 0), 0));
  const max = Math.max(1, ...totals);
  const total = totals.reduce((a, b) => a + b, 0);
  const svg = frame(W, H, title, `${title}: ${format(total)} in total over ${labels.length} days; highest day ${format(Math.max(0, ...totals))}.`);
  const plotH = H - bottom - top, step = (W - left) / Math.max(1, labels.length), barW = Math.max(1, step * 0.7);
  svg.append(svgEl("line", { x1: left, y1: H - bottom, x2: W, y2: H - bottom, stroke: "#8a94a3" }));
  svg.append(svgEl("text", { x: left - 4, y: top + 8, "text-anchor": "end" }, format(max)), svgEl("text", { x: left - 4, y: H - bottom, "text-anchor": "end" }, format(0)));
  labels.forEach((label, i) => {
    let y = H - bottom;
    for (const s of series) {
      const v = s.values[i] || 0, h = (v / max) * plotH;
      if (h > 0) {
        const rect = svgEl("rect", { x: left + i * step + (step - barW) / 2, y: y - h, width: barW, height: h, class: s.cls, "data-value": v });
        rect.append(svgEl("title", {}, `${label} ${s.name}: ${format(v)}`));
        svg.append(rect);
        y -= h;
      }
    }
    if (i === 0 || i === labels.length - 1 || labels.length <= 8) {
      const anchor = labels.length > 8 ? (i === 0 ? "start" : "end") : "middle";
      const x = anchor === "start" ? left + i * step : anchor === "end" ? left + (i + 1) * step : left + i * step + step / 2;
      svg.append(svgEl("text", { x, y: H - 8, "text-anchor": anchor }, label.slice(5)));
    }
  });
  return svg;
}

// Horizontal bars with their values written out: for a funnel or a top-N list.
export function rowChart(rows, { title, note = () => "" } = {}) {
  const W = 480, rowH = 26, H = Math.max(1, rows.length) * rowH + 8, left = 180;
  const max = Math.max(1, ...rows.map((r) => r.value));
  const svg = frame(W, H, title, `${title}: ` + rows.map((r) => `${r.label} ${r.value}`).join(", ") + ".");
  rows.forEach((r, i) => {
    const y = 4 + i * rowH, w = ((W - left - 60) * r.value) / max;
    svg.append(svgEl("text", { x: left - 6, y: y + 16, "text-anchor": "end" }, r.label.length > 30 ? r.label.slice(0, 29) + "…" : r.label));
    svg.append(svgEl("rect", { x: left, y: y + 4, width: Math.max(1, w), height: rowH - 8, class: r.cls || "bar-a", "data-value": r.value }));
    svg.append(svgEl("text", { x: left + w + 6, y: y + 16 }, `${r.value}${note(r, i)}`));
  });
  return svg;
}

export function legend(series) {
  const box = document.createElement("p");
  box.className = "legend";
  for (const s of series) {
    const item = document.createElement("span");
    const sw = svgEl("svg", { width: 12, height: 12, "aria-hidden": "true", class: "swatch" });
    sw.append(svgEl("rect", { width: 12, height: 12, class: s.cls }));
    item.append(sw, document.createTextNode(s.name));
    box.append(item);
  }
  return box;
}
