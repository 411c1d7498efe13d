import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type ComparisonState, cellAt, renderComparison } from "../src/comparison_view";
import { FakeModel, tick } from "./fake_model";

let el: HTMLElement;
beforeEach(() => {
  el = document.createElement("div");
  document.body.append(el);
});
afterEach(() => el.remove());

describe("comparison heatmap", () => {
  it("maps a click to a cell", () => {
    expect(cellAt(0.1, 0.9, 3)).toEqual([0, 2]);
    expect(cellAt(1, 0, 3)).toEqual([2, 0]);
  });

  it("asks for the matrix as binary, paints it, and a click picks the cell", async () => {
    const m = new FakeModel<ComparisonState>({ _kind: "comparison", title: "RSA", labels: ["a", "b"], picked: [] });
    m.onSend = (req) =>
      m.emit(
        "msg:custom",
        { type: "nbfeat:response", id: req.id, ok: true, min: 0, max: 1, arrays: [{ name: "matrix", dtype: "float32", shape: [2, 2] }] },
        [new DataView(new Float32Array([1, 0.25, 0.25, 1]).buffer)],
      );
    renderComparison(m.asModel(), el);
    await tick();
    expect(m.sent[0]).toMatchObject({ kind: "matrix" });
    const canvas = el.querySelector<HTMLCanvasElement>(".nbfeat-comparison-map") as HTMLCanvasElement;
    expect([canvas.width, canvas.height]).toEqual([2, 2]);
    canvas.getBoundingClientRect = () => ({ left: 0, top: 0, width: 40, height: 40 }) as DOMRect;
    canvas.dispatchEvent(new MouseEvent("click", { bubbles: true, clientX: 30, clientY: 5 }));
    expect(m.state.picked).toEqual([0, 1]);
    expect(el.querySelector(".nbfeat-comparison-status")?.textContent).toBe("a vs b: 0.250 (both shown below)");
  });
});
