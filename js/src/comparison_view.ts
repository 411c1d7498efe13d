// The comparison heatmap: the matrix of nbfeat.compare (asked for as a float32 buffer), one
// label per row; a click on a cell sets `picked` = [i, j] and the kernel opens both layers.
import type { AnyModel } from "@anywidget/types";
import { paintHeat, toBytes } from "./colormap";
import { h, listen } from "./dom";
import { Rpc } from "./rpc";

export interface ComparisonState {
  _kind: "comparison";
  title: string;
  labels: string[];
  picked: number[];
}

/** The cell [i, j] under a click at fractions (fy, fx) of an n x n heatmap. */
export function cellAt(fy: number, fx: number, n: number): [number, number] {
  const clamp = (v: number) => Math.min(n - 1, Math.max(0, Math.floor(v * n)));
  return [clamp(fy), clamp(fx)];
}

export function renderComparison(model: AnyModel<ComparisonState>, el: HTMLElement): () => void {
  const rpc = new Rpc(model);
  const title = h("div", { className: "nbfeat-title" });
  const status = h("div", { className: "nbfeat-status nbfeat-comparison-status" });
  const canvas = h("canvas", { className: "nbfeat-heat nbfeat-comparison-map", title: "Click a cell to open both layers below" });
  const rowLabels = h("div", { className: "nbfeat-row-labels nbfeat-comparison-labels" });
  const root = h(
    "div",
    { className: "nbfeat-comparison" },
    title,
    h("div", { className: "nbfeat-heat-with-labels" }, rowLabels, canvas),
    status,
  );
  el.classList.add("nbfeat-widget");
  el.append(root);
  let values: Float32Array | null = null;
  let n = 0;

  const describe = () => {
    const labels = model.get("labels") ?? [];
    const p = model.get("picked") ?? [];
    if (p.length === 2 && values) {
      status.textContent = `${labels[p[0]]} vs ${labels[p[1]]}: ${values[p[0] * n + p[1]].toFixed(3)} (both shown below)`;
      root.dataset.picked = `${p[0]},${p[1]}`;
    } else status.textContent = "Click a cell to open both layers below.";
  };

  const load = async () => {
    title.textContent = model.get("title") ?? "";
    const labels = model.get("labels") ?? [];
    rowLabels.replaceChildren(...labels.map((l) => h("div", { text: l, title: l })));
    root.dataset.state = "loading";
    try {
      const reply = await rpc.request("matrix");
      const m = reply.arrays.get("matrix");
      if (!m) return;
      n = m.shape[0];
      values = m.data as Float32Array;
      paintHeat(canvas, toBytes(values, Number(reply.meta.min), Number(reply.meta.max)), n, n);
      const px = Math.max(14, Math.min(36, Math.floor(420 / Math.max(n, 1))));
      canvas.style.width = `${n * px}px`;
      canvas.style.height = `${n * px}px`;
      rowLabels.style.setProperty("--nbfeat-row-height", `${px}px`);
      for (const d of rowLabels.children) (d as HTMLElement).style.height = `${px}px`;
      root.dataset.state = "ready";
      describe();
    } catch (e) {
      status.textContent = (e as Error).message;
      status.classList.add("nbfeat-error");
      root.dataset.state = "error";
    }
  };

  const offs = [
    listen(canvas, "click", (ev) => {
      if (!n) return;
      const r = canvas.getBoundingClientRect();
      const [i, j] = cellAt((ev.clientY - r.top) / (r.height || 1), (ev.clientX - r.left) / (r.width || 1), n);
      model.set("picked", [i, j]);
      model.save_changes();
      describe();
    }),
  ];
  const onPicked = () => describe();
  model.on("change:picked", onPicked);
  void load();
  return () => {
    for (const off of offs) off();
    model.off("change:picked", onPicked);
    rpc.dispose();
    root.remove();
  };
}
