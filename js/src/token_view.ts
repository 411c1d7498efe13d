// Text views of one layer: tokens coloured by PCA, the token-by-layer heatmap with a token's
// trajectory across layers on hover, and the most active channels by token.
//
// Two browsers side by side (two models on the same texts) are linked by the hovered token's
// characters: the reply's `spans` (int32 (T, 2)) hold each token's [start, end) in the text
// (nbfeat/widgets/spans.py: added tokens are [-1, 0) before the text, [2**30, 2**30 + 1) after it).
// Hovering publishes the token's span in the synced `token_hover` trait; ipywidgets.jslink
// copies it to the other browser's model in the page, whose view outlines every token whose
// span overlaps and draws their trajectories. Tokenizers split differently, so tokens are
// matched by characters, never by position; nothing waits for the kernel.

import type { AnyModel } from "@anywidget/types";
import type { ViewMeta } from "./browser_view";
import type { NdArray } from "./codec";
import { finiteRange, paintHeat, toBytes } from "./colormap";
import { fmt, h } from "./dom";
import type { Reply } from "./rpc";

/** The start of the span of a token added after the text (before it: -1). */
export const AFTER = 2 ** 30;
export const MAX_LINES = 8; // trajectories drawn for the linked tokens (more are listed)
const PALETTE = ["var(--nbfeat-accent, #1976d2)", "#e65100", "#2e7d32", "#6a1b9a", "#c62828", "#00838f", "#5d4037", "#ad1457"];

/** Tokens whose span [start, end) (row i of `spans`, flat (T, 2)) overlaps `span`; empty spans
 *  overlap nothing. */
export function overlapping(spans: ArrayLike<number>, span: readonly number[]): number[] {
  if (span.length < 2 || !(span[0] < span[1])) return [];
  const out: number[] = [];
  for (let i = 0; 2 * i + 1 < spans.length; i++) {
    const a = spans[2 * i];
    const b = spans[2 * i + 1];
    if (a < b && a < span[1] && span[0] < b) out.push(i);
  }
  return out;
}

/** Token `i`'s span as [start, end]. */
export function spanOf(spans: ArrayLike<number>, i: number): [number, number] {
  return [spans[2 * i], spans[2 * i + 1]];
}

/** One browser view's end of the hover link (one per view, kept across its re-renders). */
export interface TokenLink {
  /** This view's hovered span: set in the synced trait (jslink carries it to the other browser). */
  publish(span: readonly number[]): void;
  /** The handler of spans the other browser sets (null: none). */
  listen(fn: ((span: number[]) => void) | null): void;
  /** The span the other browser set last, if this view has not hovered since ([] if none). */
  remote(): number[];
}

const LINKS = new WeakMap<object, TokenLink>();

/** The hover link of the view keyed by `key` (an element of that view) on `model`'s
 *  `token_hover`; made on first use, then the same one for every re-render of the view. */
export function tokenLink(model: AnyModel<any>, key: object): TokenLink {
  const known = LINKS.get(key);
  if (known) return known;
  let own = false;
  let remote: number[] = [];
  let handler: ((span: number[]) => void) | null = null;
  // one listener per view for its lifetime: a change this view made itself is not a link
  model.on("change:token_hover", () => {
    if (own) return;
    remote = [...((model.get("token_hover") as number[] | undefined) ?? [])];
    handler?.(remote);
  });
  const link: TokenLink = {
    publish(span) {
      remote = [];
      const cur = (model.get("token_hover") as number[] | undefined) ?? [];
      if (cur.length === span.length && cur.every((v, i) => v === span[i])) return;
      own = true;
      try {
        model.set("token_hover", [...span]);
      } finally {
        own = false;
      }
      model.save_changes();
    },
    listen(fn) {
      handler = fn;
    },
    remote: () => remote,
  };
  LINKS.set(key, link);
  return link;
}

function label(tokens: string[], i: number): string {
  return `${i} ${JSON.stringify(tokens[i] ?? "")}`;
}

/** The text view of one layer's reply: token chips, the token-by-layer stack, channels by token. */
export function tokenView(reply: Reply, meta: ViewMeta, link?: TokenLink): HTMLElement {
  const box = h("div", { className: "nbfeat-tokens" });
  const tokens = meta.tokens ?? [];
  const pca = reply.arrays.get("pca");
  const spansArr = reply.arrays.get("spans");
  const spans = spansArr && spansArr.shape[0] === tokens.length ? spansArr.data : null;
  const chips: HTMLElement[] = [];
  if (tokens.length) {
    const row = h("div", { className: "nbfeat-token-row" });
    tokens.forEach((t, i) => {
      const chip = h("span", { className: "nbfeat-token", text: t || "·", attrs: { "data-token": String(i) } });
      if (pca) {
        const d = pca.data;
        chip.style.background = `rgb(${d[3 * i]}, ${d[3 * i + 1]}, ${d[3 * i + 2]})`;
        chip.style.color = d[3 * i] * 0.3 + d[3 * i + 1] * 0.6 + d[3 * i + 2] * 0.1 > 140 ? "#000" : "#fff";
      }
      if (spans) chip.dataset.span = spanOf(spans, i).join(",");
      chips.push(chip);
      row.append(chip);
    });
    box.append(h("div", { className: "nbfeat-caption", text: pca ? "tokens, coloured by PCA → RGB of this layer" : "tokens" }), row);
  }
  const markOwn = (col: number) => {
    chips.forEach((c, i) => {
      c.classList.toggle("nbfeat-hover", i === col);
    });
  };
  const markLinked = (cols: number[]) => {
    const set = new Set(cols);
    chips.forEach((c, i) => {
      const on = set.has(i);
      c.classList.toggle("nbfeat-linked", on);
      c.style.outline = on ? "2px dashed var(--nbfeat-accent, #1976d2)" : "";
      c.style.outlineOffset = on ? "1px" : "";
    });
    box.dataset.linked = cols.join(",");
  };
  const hovered = (col: number) => {
    markOwn(col);
    markLinked([]);
    if (spans && link) link.publish(spanOf(spans, col));
  };
  const stack = reply.arrays.get("stack");
  const view = stack ? stackView(stack, meta, hovered) : null;
  chips.forEach((c, i) => {
    c.addEventListener("mouseenter", () => (view ? view.show(i) : hovered(i)));
  });
  if (view) box.append(view.el);
  const note = h("div", { className: "nbfeat-note nbfeat-link-note" });
  if (link) {
    const onRemote = (span: number[]) => {
      if (!box.isConnected && box.dataset.rendered) return; // a view replaced since
      markOwn(-1);
      if (!spans) {
        note.textContent = "The other model's token is not linked here: this layer's tokens have no character spans.";
        return;
      }
      const cols = span.length >= 2 ? overlapping(spans, span) : [];
      markLinked(cols);
      note.textContent = "";
      view?.showMany(cols, span);
    };
    link.listen(onRemote);
    if (link.remote().length) onRemote(link.remote());
    box.append(note);
  }
  box.dataset.rendered = "1";
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
): { el: HTMLElement; show: (col: number) => void; showMany: (cols: number[], span: readonly number[]) => void } {
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
  const series = (col: number) => Array.from({ length: L }, (_, r) => vals[r * T + col]);
  let shown = -1;
  const show = (col: number) => {
    if (col !== shown || traj.dataset.linked !== undefined) {
      traj.replaceChildren(
        h("div", {
          className: "nbfeat-caption",
          text: `token ${label(meta.tokens, col)}: ${meta.stack_value} by layer`,
        }),
        lineChart(series(col), meta.stack_labels),
      );
      delete traj.dataset.linked;
      traj.dataset.token = String(col);
      shown = col;
    }
    onToken(col);
  };
  // the tokens of this model that share characters with the one hovered in the other browser
  const showMany = (cols: number[], span: readonly number[]) => {
    shown = -1;
    delete traj.dataset.token;
    traj.dataset.linked = cols.join(",");
    const where =
      span[0] < 0
        ? "the token added before the text"
        : span[0] >= AFTER
          ? "the token added after the text"
          : `characters ${span[0]}–${span[1]}`;
    if (!cols.length) {
      traj.replaceChildren(h("div", { className: "nbfeat-caption", text: `linked: no token of this model overlaps ${where}` }));
      return;
    }
    const drawn = cols.slice(0, MAX_LINES);
    const more = cols.length - drawn.length;
    const legend = h(
      "div",
      { className: "nbfeat-caption nbfeat-legend" },
      `linked to ${where} (the other browser): `,
      ...drawn.map((col, k) => {
        const s = h("span", { text: `token ${label(meta.tokens, col)}`, attrs: { "data-token": String(col) } });
        s.style.color = PALETTE[k % PALETTE.length];
        s.style.marginRight = "0.6em";
        return s;
      }),
      more > 0 ? `and ${more} more` : "",
      ` · ${meta.stack_value} by layer`,
    );
    traj.replaceChildren(
      legend,
      lineChart(
        drawn.map(series),
        meta.stack_labels,
        drawn.map((col) => `token ${label(meta.tokens, col)}`),
      ),
    );
  };
  let last = -1;
  c.addEventListener("mousemove", (ev: MouseEvent) => {
    const rect = c.getBoundingClientRect();
    const col = Math.max(0, Math.min(T - 1, Math.floor(((ev.clientX - rect.left) / (rect.width || 1)) * T)));
    if (col !== last || traj.dataset.linked !== undefined) show(col);
    last = col;
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
  return { el, show, showMany };
}

/** An inline SVG line chart of one value per layer; several series share one scale. */
export function lineChart(values: number[] | number[][], labels: string[], names: string[] = []): SVGSVGElement {
  const ns = "http://www.w3.org/2000/svg";
  const W = 260;
  const H = 80;
  const all = (values.length && Array.isArray(values[0]) ? values : [values]) as number[][];
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "nbfeat-line");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("width", String(W));
  svg.setAttribute("height", String(H));
  const [lo, hi] = finiteRange(all.flat());
  const span = hi > lo ? hi - lo : 1;
  all.forEach((one, k) => {
    const pts = one.map(
      (v, i) =>
        `${(4 + (i / Math.max(1, one.length - 1)) * (W - 8)).toFixed(1)},${(H - 4 - ((Number.isFinite(v) ? v - lo : 0) / span) * (H - 8)).toFixed(1)}`,
    );
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", pts.join(" "));
    line.setAttribute("fill", "none");
    if (k > 0) line.style.stroke = PALETTE[k % PALETTE.length];
    if (names[k]) line.dataset.name = names[k];
    svg.append(line);
    one.forEach((v, i) => {
      const [x, y] = pts[i].split(",");
      const dot = document.createElementNS(ns, "circle");
      dot.setAttribute("cx", x);
      dot.setAttribute("cy", y);
      dot.setAttribute("r", "2.5");
      if (k > 0) dot.style.fill = PALETTE[k % PALETTE.length];
      const t = document.createElementNS(ns, "title");
      t.textContent = `${names[k] ? `${names[k]} · ` : ""}${labels[i] ?? i}: ${fmt(v)}`;
      dot.append(t);
      svg.append(dot);
    });
  });
  return svg;
}
