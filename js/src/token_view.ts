// Text views of one layer: tokens coloured by PCA, the token-by-layer heatmap with a token's
// trajectory across layers on hover, and the most active channels by token.

import type { ViewMeta } from "./browser_view";
import type { NdArray } from "./codec";
import { finiteRange, paintHeat, toBytes } from "./colormap";
import { fmt, h } from "./dom";
import type { Reply } from "./rpc";

/** The text view of one layer's reply: token chips, the token-by-layer stack, channels by token. */
export function tokenView(reply: Reply, meta: ViewMeta): HTMLElement {
  const box = h("div", { className: "nbfeat-tokens" });
  const tokens = meta.tokens ?? [];
  const pca = reply.arrays.get("pca");
  if (tokens.length) {
    const chips = h("div", { className: "nbfeat-token-row" });
    tokens.forEach((t, i) => {
      const chip = h("span", { className: "nbfeat-token", text: t || "·", attrs: { "data-token": String(i) } });
      if (pca) {
        const d = pca.data;
        chip.style.background = `rgb(${d[3 * i]}, ${d[3 * i + 1]}, ${d[3 * i + 2]})`;
        chip.style.color = d[3 * i] * 0.3 + d[3 * i + 1] * 0.6 + d[3 * i + 2] * 0.1 > 140 ? "#000" : "#fff";
      }
      chips.append(chip);
    });
    box.append(h("div", { className: "nbfeat-caption", text: pca ? "tokens, coloured by PCA → RGB of this layer" : "tokens" }), chips);
  }
  const stack = reply.arrays.get("stack");
  if (stack) {
    const chips = [...box.querySelectorAll<HTMLElement>(".nbfeat-token")];
    const view = stackView(stack, meta, (col) => {
      chips.forEach((c, i) => {
        c.classList.toggle("nbfeat-hover", i === col);
      });
    });
    chips.forEach((c, i) => {
      c.addEventListener("mouseenter", () => view.show(i));
    });
    box.append(view.el);
  }
  const ch = reply.arrays.get("channels");
  if (ch) {
    const [k, t] = ch.shape;
    const c = h("canvas", { className: "nbfeat-heat nbfeat-token-channels" });
    paintHeat(c, ch.data as Uint8Array, k, t);
    c.style.width = `${Math.min(720, t * 18)}px`;
    c.style.height = `${k * 12}px`;
    const labels = h("div", { className: "nbfeat-row-labels" }, ...meta.channels.map((x) => h("div", { text: `ch ${x}` })));
    box.append(
      h("div", { className: "nbfeat-caption", text: "most active channels of this layer (rows) by token (columns)" }),
      h("div", { className: "nbfeat-heat-with-labels" }, labels, c),
    );
  }
  return box;
}

export function stackView(
  stack: NdArray,
  meta: ViewMeta,
  onToken: (col: number) => void,
): { el: HTMLElement; show: (col: number) => void } {
  const [L, T] = stack.shape;
  const vals = stack.data as Float32Array;
  // each row (layer) on its own scale: norms grow with depth and would hide early layers
  const bytes = new Uint8Array(L * T);
  for (let r = 0; r < L; r++) {
    const row = vals.subarray(r * T, (r + 1) * T);
    const [lo, hi] = finiteRange(row);
    bytes.set(toBytes(row, lo, hi), r * T);
  }
  const c = h("canvas", { className: "nbfeat-heat nbfeat-stack" });
  paintHeat(c, bytes, L, T);
  c.style.width = `${Math.min(720, T * 18)}px`;
  c.style.height = `${L * 14}px`;
  const labels = h(
    "div",
    { className: "nbfeat-row-labels" },
    ...meta.stack_labels.map((x, i) => h("div", { text: x, className: i === meta.stack_row ? "nbfeat-current" : "" })),
  );
  const traj = h("div", { className: "nbfeat-trajectory", text: "Hover a token (or a column) to see its trajectory across layers." });
  const show = (col: number) => {
    const series = Array.from({ length: L }, (_, r) => vals[r * T + col]);
    traj.replaceChildren(
      h("div", {
        className: "nbfeat-caption",
        text: `token ${col} ${JSON.stringify(meta.tokens[col] ?? "")}: ${meta.stack_value} by layer`,
      }),
      lineChart(series, meta.stack_labels),
    );
    traj.dataset.token = String(col);
    onToken(col);
  };
  c.addEventListener("mousemove", (ev: MouseEvent) => {
    const rect = c.getBoundingClientRect();
    show(Math.max(0, Math.min(T - 1, Math.floor(((ev.clientX - rect.left) / (rect.width || 1)) * T))));
  });
  const el = h(
    "div",
    { className: "nbfeat-stack-box" },
    h("div", {
      className: "nbfeat-caption",
      text: `${meta.stack_value} per token (columns) and layer (rows), each row scaled to its own range`,
    }),
    h("div", { className: "nbfeat-heat-with-labels" }, labels, c),
    traj,
  );
  return { el, show };
}

/** An inline SVG line chart of one value per layer. */
export function lineChart(values: number[], labels: string[]): SVGSVGElement {
  const ns = "http://www.w3.org/2000/svg";
  const W = 260;
  const H = 80;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "nbfeat-line");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("width", String(W));
  svg.setAttribute("height", String(H));
  const [lo, hi] = finiteRange(values);
  const span = hi > lo ? hi - lo : 1;
  const pts = values.map(
    (v, i) =>
      `${(4 + (i / Math.max(1, values.length - 1)) * (W - 8)).toFixed(1)},${(H - 4 - ((Number.isFinite(v) ? v - lo : 0) / span) * (H - 8)).toFixed(1)}`,
  );
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", pts.join(" "));
  line.setAttribute("fill", "none");
  svg.append(line);
  values.forEach((v, i) => {
    const [x, y] = pts[i].split(",");
    const dot = document.createElementNS(ns, "circle");
    dot.setAttribute("cx", x);
    dot.setAttribute("cy", y);
    dot.setAttribute("r", "2.5");
    const t = document.createElementNS(ns, "title");
    t.textContent = `${labels[i] ?? i}: ${fmt(v)}`;
    dot.append(t);
    svg.append(dot);
  });
  return svg;
}
