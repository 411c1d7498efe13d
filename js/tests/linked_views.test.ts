import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type BrowserState, renderBrowser } from "../src/browser_view";
import { clickFraction, patchBox, similarityRow } from "../src/linked_views";
import { FakeModel, tick } from "./fake_model";

let el: HTMLElement;
beforeEach(() => {
  el = document.createElement("div");
  document.body.append(el);
});
afterEach(() => el.remove());

const u8 = (n: number, v = 5) => new DataView(new Uint8Array(n).fill(v).buffer);

/** Replies as BrowserWidget does for view, strip and similarity requests. */
function reply(req: any): [any, DataView[]] {
  const head = { type: "nbfeat:response", id: req.id, kind: req.kind, ok: true };
  if (req.kind === "strip")
    return [
      {
        ...head,
        strip: [
          { layer: "layer1", grid: [8, 8] },
          { layer: "layer2", grid: [4, 4] },
        ],
        skipped: [],
        arrays: [{ name: "strip", dtype: "uint8", shape: [2, 6, 6, 3] }],
      },
      [u8(2 * 6 * 6 * 3)],
    ];
  if (req.kind === "similarity")
    return [
      {
        ...head,
        maps: [
          { layer: "layer2", grid: [4, 4], patch: [1, 2], min: 0.1 },
          { layer: "layer1", grid: [8, 8], patch: [2, 5], min: 0.2 },
        ],
        skipped: ["fc"],
        arrays: [{ name: "similarity", dtype: "uint8", shape: [2, 6, 6] }],
      },
      [u8(2 * 36)],
    ];
  return [
    {
      ...head,
      view: "spatial",
      layer: req.layer,
      sample: req.sample,
      info: "x",
      n_depth: 0,
      depth_label: "",
      channels: [1],
      channel_max: [1],
      n_channels: 4,
      pca_note: "",
      arrays: [
        { name: "channels", dtype: "uint8", shape: [1, 4, 4] },
        { name: "pca", dtype: "uint8", shape: [4, 4, 3] },
      ],
    },
    [u8(16), u8(48)],
  ];
}

function make() {
  return new FakeModel<BrowserState>({
    _kind: "browser",
    title: "m",
    modality: "image",
    samples: [{ id: "a", label: "" }],
    layers: ["layer1", "layer2", "fc"],
    sample: 0,
    layer: "layer2",
    channel: -1,
    depth: 0,
    n_top: 1,
    linked_layers: ["layer1", "layer2"],
    code: "",
  });
}

describe("linked views", () => {
  it("maps a click to fractions and a patch to its square", () => {
    expect(clickFraction({ clientX: 30, clientY: 10 }, { left: 10, top: 0, width: 40, height: 40 })).toEqual([0.25, 0.5]);
    expect(clickFraction({ clientX: 99, clientY: -5 }, { left: 0, top: 0, width: 10, height: 10 })).toEqual([0, 1]);
    expect(patchBox([4, 4], [1, 2], 48)).toEqual([24, 12, 12, 12]);
    expect(patchBox([7, 7], [6, 6], 48)).toEqual([41, 41, 7, 7]);
  });

  it("draws one similarity map per layer, the shown layer marked", () => {
    const arr = { dtype: "uint8", shape: [2, 6, 6], data: new Uint8Array(72) } as any;
    const row = similarityRow(
      [
        { layer: "a", grid: [2, 2], patch: [0, 0] },
        { layer: "b", grid: [3, 3], patch: [1, 1] },
      ],
      arr,
      "b",
    );
    expect(row.querySelectorAll("canvas").length).toBe(2);
    expect(row.querySelector(".nbfeat-current")?.getAttribute("data-layer")).toBe("b");
  });

  it("asks for the strip after a spatial view; a click on the PCA map asks for the similarity maps", async () => {
    const m = make();
    m.onSend = (req) => m.emit("msg:custom", ...reply(req));
    renderBrowser(m.asModel(), el);
    await tick();
    await tick();
    await tick();
    expect(m.sent.map((r) => r.kind)).toEqual(["view", "strip"]);
    expect(el.querySelectorAll(".nbfeat-layer-strip canvas").length).toBe(2);
    const canvas = el.querySelector<HTMLCanvasElement>("[data-panel='pca'] canvas") as HTMLCanvasElement;
    canvas.getBoundingClientRect = () => ({ left: 0, top: 0, width: 100, height: 50 }) as DOMRect;
    canvas.dispatchEvent(new MouseEvent("click", { bubbles: true, clientX: 75, clientY: 10 }));
    await tick();
    expect(m.sent[2]).toMatchObject({ kind: "similarity", layer: "layer2", fy: 0.2, fx: 0.75 });
    await tick();
    expect(el.querySelectorAll(".nbfeat-sim-box canvas.nbfeat-sim").length).toBe(2);
    expect(el.querySelector(".nbfeat-sim-box")?.textContent).toContain("no spatial map: fc");
    // a click on a strip tile shows that layer; the clicked patch follows to it
    el.querySelector<HTMLElement>(".nbfeat-layer-strip [data-layer='layer1']")?.click();
    expect(m.state.layer).toBe("layer1");
    await tick();
    await tick();
    expect(m.sent.slice(3).map((r) => r.kind)).toEqual(["view", "strip", "similarity"]);
  });
});
