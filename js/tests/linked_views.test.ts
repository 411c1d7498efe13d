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

/** Replies as BrowserWidget does for view, strip and similarity requests; `seen`: the
 * thumbnail is the input as the model saw it (BackboneSource) or the original (a dataset). */
function reply(req: any, seen = true): [any, DataView[]] {
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
      thumb_seen: req.thumb ? seen : undefined,
      arrays: [
        { name: "channels", dtype: "uint8", shape: [1, 4, 4] },
        { name: "pca", dtype: "uint8", shape: [4, 4, 3] },
        ...(req.thumb ? [{ name: "thumb", dtype: "uint8", shape: [8, 8, 3] }] : []),
      ],
    },
    [u8(16), u8(48), ...(req.thumb ? [u8(8 * 8 * 3)] : [])],
  ];
}

const rect = (canvas: Element, width: number, height: number) => {
  (canvas as HTMLElement).getBoundingClientRect = () => ({ left: 0, top: 0, width, height }) as DOMRect;
};
const click = (canvas: Element, x: number, y: number) =>
  canvas.dispatchEvent(new MouseEvent("click", { bubbles: true, clientX: x, clientY: y }));
const settle = async () => {
  for (let i = 0; i < 4; i++) await tick();
};

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

  it("a click on the input as the model saw it picks the patch: the `patch` trait, maps, outlines", async () => {
    const m = make();
    m.onSend = (req) => m.emit("msg:custom", ...reply(req));
    renderBrowser(m.asModel(), el);
    await settle();
    const input = el.querySelector("[data-panel='input']") as HTMLElement;
    expect(input.dataset.seen).toBe("true");
    expect(input.classList.contains("nbfeat-clickable")).toBe(true);
    expect(input.textContent).toContain("as the model sees it");
    const canvas = input.querySelector("canvas") as HTMLCanvasElement;
    rect(canvas, 80, 80);
    click(canvas, 60, 20);
    expect(m.state.patch).toEqual([0.25, 0.75]); // synced: Python reads it, the snapshot draws it
    expect(m.saved).toBe(1);
    await settle();
    expect(m.sent.at(-1)).toMatchObject({ kind: "similarity", layer: "layer2", fy: 0.25, fx: 0.75 });
    // the reply's patch at the shown layer (layer2: [1, 2] of 4x4) outlined on both pictures
    const boxes = [...el.querySelectorAll<HTMLElement>(".nbfeat-browser-main .nbfeat-patch-box")];
    expect(boxes.map((b) => b.closest("[data-panel]")?.getAttribute("data-panel"))).toEqual(["input", "pca"]);
    for (const b of boxes) expect([b.style.top, b.style.left, b.style.height, b.style.width]).toEqual(["25%", "50%", "25%", "25%"]);
  });

  it("the original image (not what the model saw) is not clickable", async () => {
    const m = make();
    m.onSend = (req) => m.emit("msg:custom", ...reply(req, false));
    renderBrowser(m.asModel(), el);
    await settle();
    const input = el.querySelector("[data-panel='input']") as HTMLElement;
    expect(input.dataset.seen).toBe("false");
    expect(input.textContent).toContain("original image");
    const canvas = input.querySelector("canvas") as HTMLCanvasElement;
    rect(canvas, 80, 80);
    click(canvas, 60, 20);
    await settle();
    expect(m.state.patch).toBeUndefined();
    expect(m.sent.map((r) => r.kind)).toEqual(["view", "strip"]);
  });

  it("the patch set from Python shows its maps, [] clears them, and a new view starts with it", async () => {
    const m = make();
    m.onSend = (req) => m.emit("msg:custom", ...reply(req));
    const cleanup = renderBrowser(m.asModel(), el);
    await settle();
    m.fromKernel({ patch: [0.5, 0.1] });
    await settle();
    expect(m.sent.at(-1)).toMatchObject({ kind: "similarity", fy: 0.5, fx: 0.1 });
    expect(el.querySelectorAll(".nbfeat-sim-box canvas.nbfeat-sim").length).toBe(2);
    m.fromKernel({ patch: [] });
    await settle();
    expect(el.querySelectorAll(".nbfeat-sim-box canvas").length).toBe(0);
    expect(el.querySelectorAll(".nbfeat-patch-box").length).toBe(0);
    // a re-render (a reload, a second view of the same widget) draws the clicked patch again
    m.fromKernel({ patch: [0.9, 0.9] });
    await settle();
    cleanup();
    expect(m.listenerCount()).toBe(0);
    const again = document.createElement("div");
    document.body.append(again);
    const before = m.sent.length;
    renderBrowser(m.asModel(), again);
    await settle();
    expect(m.sent.slice(before).map((r) => r.kind)).toEqual(["view", "strip", "similarity"]);
    expect(again.querySelectorAll(".nbfeat-sim-box canvas.nbfeat-sim").length).toBe(2);
    expect(again.querySelectorAll(".nbfeat-patch-box").length).toBe(2);
    again.remove();
  });
});
