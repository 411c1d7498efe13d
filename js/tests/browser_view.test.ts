import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type BrowserState, renderBrowser } from "../src/browser_view";
import { FakeModel, tick } from "./fake_model";

let el: HTMLElement;
beforeEach(() => {
  el = document.createElement("div");
  document.body.append(el);
});
afterEach(() => el.remove());

function make(extra: Partial<BrowserState> = {}) {
  return new FakeModel<BrowserState>({
    _kind: "browser",
    title: "torchvision:resnet18",
    modality: "image",
    samples: [
      { id: "cats/a.png", label: "cats" },
      { id: "dogs/b.png", label: "dogs" },
    ],
    layers: ["layer1", "layer2", "fc"],
    sample: 0,
    layer: "layer2",
    channel: -1,
    depth: 0,
    n_top: 4,
    linked_layers: [],
    code: "bb.extract(inputs, layers=['layer2'])",
    ...extra,
  });
}

/** Reply the way BrowserWidget._request_view does: JSON + one buffer per array. */
function spatialReply(req: any, k = 4, h = 3, w = 5) {
  const arrays = [
    { name: "channels", dtype: "uint8", shape: [k, h, w] },
    { name: "pca", dtype: "uint8", shape: [h, w, 3] },
  ];
  const buffers = [new DataView(new Uint8Array(k * h * w).fill(7).buffer), new DataView(new Uint8Array(h * w * 3).fill(9).buffer)];
  if (req.thumb) {
    arrays.push({ name: "thumb", dtype: "uint8", shape: [2, 2, 3] });
    buffers.push(new DataView(new Uint8Array(12).buffer));
  }
  const meta = {
    type: "nbfeat:response",
    id: req.id,
    ok: true,
    view: "spatial",
    layer: req.layer,
    sample: req.sample,
    info: `${req.layer} · channel 128 × y ${h} × x ${w}`,
    n_depth: 0,
    depth_label: "",
    channels: Array.from({ length: k }, (_, i) => 10 + i),
    channel_max: Array.from({ length: k }, () => 1.5),
    n_channels: 128,
    pca_note: "",
    arrays,
  };
  return [meta, buffers] as const;
}

describe("browser view", () => {
  it("asks for the shown sample and layer, then draws input, PCA and channel tiles", async () => {
    const m = make();
    m.onSend = (req) => m.emit("msg:custom", ...spatialReply(req));
    renderBrowser(m.asModel(), el);
    await tick();
    expect(m.sent).toHaveLength(1);
    expect(m.sent[0]).toMatchObject({ type: "nbfeat:request", kind: "view", sample: 0, layer: "layer2", channel: -1, k: 4, thumb: true });
    await tick();
    expect(el.querySelector(".nbfeat-browser")?.getAttribute("data-state")).toBe("ready");
    expect(el.querySelector('[data-panel="input"] canvas')).not.toBeNull();
    const pca = el.querySelector<HTMLCanvasElement>('[data-panel="pca"] canvas');
    expect([pca?.width, pca?.height]).toEqual([5, 3]);
    const tiles = el.querySelectorAll<HTMLElement>(".nbfeat-channels [data-channel]");
    expect([...tiles].map((t) => t.dataset.channel)).toEqual(["10", "11", "12", "13"]);
    expect(el.querySelector(".nbfeat-browser-status")?.textContent).toBe("layer2 · channel 128 × y 3 × x 5");
  });

  it("a layer change from Python asks again; the thumbnail is asked once per sample", async () => {
    const m = make();
    m.onSend = (req) => m.emit("msg:custom", ...spatialReply(req));
    renderBrowser(m.asModel(), el);
    await tick();
    await tick();
    m.fromKernel({ layer: "layer1", channel: -1 });
    await tick();
    expect(m.sent).toHaveLength(2); // two trait changes, one request
    expect(m.sent[1]).toMatchObject({ layer: "layer1", thumb: false });
  });

  it("clicking a channel tile shows that channel; errors reach the status line", async () => {
    const m = make();
    m.onSend = (req) => {
      if (req.channel === 11) m.emit("msg:custom", { type: "nbfeat:response", id: req.id, ok: false, error: "Channel 11 is broken" }, []);
      else m.emit("msg:custom", ...spatialReply(req));
    };
    renderBrowser(m.asModel(), el);
    await tick();
    await tick();
    el.querySelector<HTMLElement>('.nbfeat-channels [data-channel="11"]')?.click();
    expect(m.state.channel).toBe(11);
    expect(m.saved).toBe(1);
    await tick();
    await tick();
    const status = el.querySelector(".nbfeat-browser-status") as HTMLElement;
    expect(status.textContent).toBe("Channel 11 is broken");
    expect(status.classList.contains("nbfeat-error")).toBe(true);
  });

  it("drops a stale reply when a newer request was made", async () => {
    const m = make();
    const pending: any[] = [];
    m.onSend = (req) => pending.push(req);
    renderBrowser(m.asModel(), el);
    await tick();
    m.fromKernel({ layer: "layer1" });
    await tick();
    expect(pending.map((r) => r.layer)).toEqual(["layer2", "layer1"]);
    m.emit("msg:custom", ...spatialReply(pending[1], 2));
    await tick();
    m.emit("msg:custom", ...spatialReply(pending[0], 4)); // late answer for layer2
    await tick();
    expect(el.querySelectorAll(".nbfeat-channels [data-channel]")).toHaveLength(2);
    expect((el.querySelector(".nbfeat-browser") as HTMLElement).dataset.layer).toBe("layer1");
  });

  it("text: token chips, token-by-layer heatmap and the trajectory on hover", async () => {
    const m = make({ modality: "text", layers: ["h.0", "h.1"], layer: "h.1", samples: [{ id: "0", label: "I know this sky" }] });
    const L = 2;
    const T = 3;
    m.onSend = (req) => {
      const f16 = new Uint16Array([0x3c00, 0x4000, 0x4200, 0x3c00, 0x3c00, 0x3c00]); // 1 2 3 / 1 1 1
      m.emit(
        "msg:custom",
        {
          type: "nbfeat:response",
          id: req.id,
          ok: true,
          view: "tokens",
          info: "h.1",
          n_depth: 0,
          channels: [5, 6],
          channel_max: [1, 1],
          n_channels: 8,
          tokens: ["I", " know", " sky"],
          stack_labels: ["block 0", "block 1"],
          stack_row: 1,
          stack_value: "L2 norm",
          arrays: [
            { name: "channels", dtype: "uint8", shape: [2, T] },
            { name: "pca", dtype: "uint8", shape: [T, 3] },
            { name: "stack", dtype: "float16", shape: [L, T] },
          ],
        },
        [new DataView(new Uint8Array(2 * T).buffer), new DataView(new Uint8Array(T * 3).fill(200).buffer), new DataView(f16.buffer)],
      );
    };
    renderBrowser(m.asModel(), el);
    await tick();
    await tick();
    expect([...el.querySelectorAll(".nbfeat-token")].map((t) => t.textContent)).toEqual(["I", " know", " sky"]);
    expect(el.querySelector(".nbfeat-row-labels .nbfeat-current")?.textContent).toBe("block 1");
    const stack = el.querySelector<HTMLCanvasElement>(".nbfeat-stack") as HTMLCanvasElement;
    expect([stack.width, stack.height]).toEqual([T, L]);
    stack.dispatchEvent(new MouseEvent("mousemove", { clientX: 0, clientY: 0 }));
    const traj = el.querySelector<HTMLElement>(".nbfeat-trajectory") as HTMLElement;
    expect(traj.dataset.token).toBe("0");
    expect(traj.querySelectorAll("circle")).toHaveLength(L);
    expect(traj.textContent).toContain('"I"');
    expect(el.querySelector(".nbfeat-token.nbfeat-hover")?.textContent).toBe("I");
    el.querySelectorAll<HTMLElement>(".nbfeat-token")[2].dispatchEvent(new MouseEvent("mouseenter"));
    expect(traj.dataset.token).toBe("2");
    expect(traj.textContent).toContain('" sky"');
    expect(el.querySelector(".nbfeat-token.nbfeat-hover")?.textContent).toBe(" sky");
  });

  it("cleanup removes handlers and rejects nothing loudly", async () => {
    const m = make();
    m.onSend = () => undefined; // the kernel never answers
    const cleanup = renderBrowser(m.asModel(), el);
    await tick();
    cleanup();
    await tick();
    expect(m.listenerCount()).toBe(0);
    expect(el.children).toHaveLength(0);
  });
});
