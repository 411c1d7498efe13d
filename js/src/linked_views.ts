// Linked views of an image layer: click a patch and see its cosine-similarity map at this layer
// and at every linked layer (the same image location), side by side; and a layer strip, one
// small PCA map per linked layer, to see the change with depth at a glance. The kernel sends
// uint8 maps (see nbfeat/widgets/views.py similarity_view / strip_view).
import type { NdArray } from "./codec";
import { paintHeat, paintRGB } from "./colormap";
import { h } from "./dom";

export interface LinkedMap {
  layer: string;
  grid: [number, number];
  patch?: [number, number];
  min?: number;
}

/** Where a click fell on an element, as fractions of its height and width (0..1). */
export function clickFraction(
  ev: { clientX: number; clientY: number },
  rect: { left: number; top: number; width: number; height: number },
): [number, number] {
  const fy = (ev.clientY - rect.top) / (rect.height || 1);
  const fx = (ev.clientX - rect.left) / (rect.width || 1);
  return [Math.min(Math.max(fy, 0), 1), Math.min(Math.max(fx, 0), 1)];
}

/** The square (in canvas pixels) that covers patch [row, col] of a grid drawn at side x side. */
export function patchBox(grid: [number, number], patch: [number, number], side: number): [number, number, number, number] {
  const [gh, gw] = grid;
  const y0 = Math.floor((patch[0] * side) / gh);
  const x0 = Math.floor((patch[1] * side) / gw);
  const y1 = Math.floor(((patch[0] + 1) * side) / gh);
  const x1 = Math.floor(((patch[1] + 1) * side) / gw);
  return [x0, y0, Math.max(1, x1 - x0), Math.max(1, y1 - y0)];
}

/** Outline patch [row, col] of a `grid` over the picture in `fig` (its `.nbfeat-patch-wrap`),
 * as a box in fractions of the picture: the canvas's own pixels stay as drawn. */
export function outlinePatch(fig: HTMLElement, grid: [number, number], patch: [number, number]): HTMLElement | null {
  const wrap = fig.querySelector<HTMLElement>(".nbfeat-patch-wrap");
  if (!wrap) return null;
  let box = wrap.querySelector<HTMLElement>(".nbfeat-patch-box");
  if (!box) {
    box = h("div", { className: "nbfeat-patch-box", attrs: { "aria-hidden": "true" } });
    wrap.append(box);
  }
  const [gh, gw] = grid;
  box.style.top = `${(patch[0] / gh) * 100}%`;
  box.style.left = `${(patch[1] / gw) * 100}%`;
  box.style.height = `${100 / gh}%`;
  box.style.width = `${100 / gw}%`;
  box.dataset.patch = `${patch[0]},${patch[1]}`;
  return box;
}

/** Remove every patch outline under `root`. */
export function clearPatch(root: HTMLElement): void {
  for (const box of root.querySelectorAll(".nbfeat-patch-box")) box.remove();
}

/** The similarity row: one heatmap per layer, the clicked patch outlined. */
export function similarityRow(maps: LinkedMap[], arr: NdArray, current: string): HTMLElement {
  const [n, s] = arr.shape;
  const row = h("div", { className: "nbfeat-linked", attrs: { "data-panel": "similarity" } });
  for (let i = 0; i < n; i++) {
    const m = maps[i];
    const c = h("canvas", { className: "nbfeat-heat nbfeat-sim" });
    paintHeat(c, arr.data as Uint8Array, s, s, i * s * s);
    const ctx = c.getContext?.("2d");
    if (ctx && typeof ctx.strokeRect === "function" && m.patch) {
      const [x, y, w, hh] = patchBox(m.grid, m.patch, s);
      ctx.strokeStyle = "#00e5ff";
      ctx.lineWidth = 1;
      ctx.strokeRect(x + 0.5, y + 0.5, Math.max(1, w - 1), Math.max(1, hh - 1));
    }
    const fig = h(
      "figure",
      { className: `nbfeat-panel${m.layer === current ? " nbfeat-current" : ""}`, attrs: { "data-layer": m.layer } },
      c,
      h("figcaption", {
        text: `${m.layer} · ${m.grid[0]}×${m.grid[1]}`,
        title: `cosine similarity to the clicked patch, from ${fmtMin(m.min)} (dark) to 1`,
      }),
    );
    row.append(fig);
  }
  return row;
}

/** The layer strip: one small PCA map per layer; a click picks that layer. */
export function stripRow(maps: LinkedMap[], arr: NdArray, current: string): HTMLElement {
  const [n, s] = arr.shape;
  const row = h("div", { className: "nbfeat-linked nbfeat-layer-strip", attrs: { "data-panel": "strip" } });
  for (let i = 0; i < n; i++) {
    const c = h("canvas", { className: "nbfeat-pca nbfeat-strip-map" });
    paintRGB(c, (arr.data as Uint8Array).subarray(i * s * s * 3, (i + 1) * s * s * 3), s, s);
    const m = maps[i];
    row.append(
      h(
        "figure",
        {
          className: `nbfeat-panel${m.layer === current ? " nbfeat-current" : ""}`,
          title: `Show ${m.layer}`,
          attrs: { "data-layer": m.layer },
        },
        c,
        h("figcaption", { text: m.layer }),
      ),
    );
  }
  return row;
}

function fmtMin(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? "–" : v.toFixed(2);
}
