// The explorer's drag handle: it sits between the tree and the browser (siblings in the
// explorer's HBox) and sets the tree's width; the width is kept in the model (`width`, px),
// so a re-rendered or second view opens at the same split.
import type { AnyModel } from "@anywidget/types";
import { h, listen } from "./dom";

export interface SplitterState {
  _kind: "splitter";
  width: number;
  min_width: number;
}

/** The width the tree gets for a drag from `startX` to `x`, kept within [min, max]. */
export function dragWidth(start: number, startX: number, x: number, min: number, max: number): number {
  return Math.round(Math.min(Math.max(start + x - startX, min), Math.max(min, max)));
}

export function renderSplitter(model: AnyModel<SplitterState>, el: HTMLElement): () => void {
  const bar = h("div", {
    className: "nbfeat-splitter",
    title: "Drag to resize the tree and the browser",
    attrs: { role: "separator", "aria-orientation": "vertical" },
  });
  el.classList.add("nbfeat-widget", "nbfeat-splitter-host");
  el.append(bar);
  // the tree is the element before this one in the explorer's row
  const tree = () => el.previousElementSibling as HTMLElement | null;
  const apply = () => {
    const t = tree();
    const w = model.get("width");
    if (t && w > 0) {
      t.style.flex = `0 0 ${w}px`;
      t.style.maxWidth = "none";
      t.style.width = `${w}px`;
    }
  };
  let drag: { x: number; w: number } | null = null;
  const offs = [
    listen(bar, "pointerdown", (ev) => {
      const t = tree();
      if (!t) return;
      drag = { x: ev.clientX, w: t.getBoundingClientRect().width };
      bar.classList.add("nbfeat-dragging");
      bar.setPointerCapture?.(ev.pointerId);
      ev.preventDefault();
    }),
    listen(bar, "pointermove", (ev) => {
      if (!drag) return;
      const row = el.parentElement?.getBoundingClientRect().width ?? 10_000;
      model.set("width", dragWidth(drag.w, drag.x, ev.clientX, model.get("min_width") || 260, row - 320));
      apply();
    }),
    listen(bar, "pointerup", () => {
      if (!drag) return;
      drag = null;
      bar.classList.remove("nbfeat-dragging");
      model.save_changes();
    }),
  ];
  const onWidth = () => apply();
  model.on("change:width", onWidth);
  // the siblings are attached after this view renders: apply once they are there
  requestAnimationFrame(apply);
  return () => {
    for (const off of offs) off();
    model.off("change:width", onWidth);
    bar.remove();
  };
}
