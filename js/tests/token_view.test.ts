import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type BrowserState, renderBrowser } from "../src/browser_view";
import { overlapping, tokenLink } from "../src/token_view";
import { FakeModel, tick } from "./fake_model";

// "I know café": GPT-2-like byte-level BPE (é split over two byte tokens, the second "") and
// BERT-like WordPiece ([CLS] ... [SEP], "kn" "##ow"), spans as nbfeat/widgets/spans.py gives them
const AFTER = 2 ** 30; // where tokens added after the text are (spans.py)
const GPT = { tokens: ["I", " know", " caf", "é", ""], spans: [0, 1, 2, 6, 7, 10, 10, 11, 10, 11] };
const BERT = {
  tokens: ["[CLS]", "I", " kn", "ow", " ca", "fé", "[SEP]"],
  spans: [-1, 0, 0, 1, 2, 4, 4, 6, 7, 9, 9, 11, AFTER, AFTER + 1],
};
const L = 3;

let els: HTMLElement[] = [];
beforeEach(() => {
  els = [0, 1].map(() => {
    const el = document.createElement("div");
    document.body.append(el);
    return el;
  });
});
afterEach(() => {
  for (const el of els) el.remove();
});

function model(layer = "h.1") {
  return new FakeModel<BrowserState & { token_hover: number[] }>({
    _kind: "browser",
    title: "m",
    modality: "text",
    samples: [{ id: "0", label: "I know café" }],
    layers: ["h.0", "h.1", "h.2"],
    sample: 0,
    layer,
    channel: -1,
    depth: 0,
    n_top: 2,
    linked_layers: [],
    code: "",
    token_hover: [],
  });
}

/** Answer view requests like BrowserWidget._request_view: tokens, stack (L, T), spans int32 (T, 2). */
function answer(m: FakeModel<any>, side: { tokens: string[]; spans: number[] }, withSpans = true, withStack = true) {
  m.onSend = (req) => {
    const T = side.tokens.length;
    const f16 = new Uint16Array(L * T);
    for (let r = 0; r < L; r++) for (let t = 0; t < T; t++) f16[r * T + t] = 0x3c00 + 0x100 * (r + t); // rising values
    const arrays: any[] = [
      { name: "channels", dtype: "uint8", shape: [2, T] },
      { name: "pca", dtype: "uint8", shape: [T, 3] },
      { name: "stack", dtype: "float16", shape: [L, T] },
    ];
    const buffers = [
      new DataView(new Uint8Array(2 * T).buffer),
      new DataView(new Uint8Array(3 * T).fill(90).buffer),
      new DataView(f16.buffer),
    ];
    if (!withStack) {
      arrays.pop();
      buffers.pop();
    }
    if (withSpans) {
      arrays.push({ name: "spans", dtype: "int32", shape: [T, 2] });
      buffers.push(new DataView(new Int32Array(side.spans).buffer));
    }
    m.emit(
      "msg:custom",
      {
        type: "nbfeat:response",
        id: req.id,
        ok: true,
        view: "tokens",
        info: req.layer,
        layer: req.layer,
        n_depth: 0,
        channels: [1, 2],
        channel_max: [1, 1],
        n_channels: 8,
        tokens: side.tokens,
        stack_labels: ["h.0", "h.1", "h.2"],
        stack_row: 1,
        stack_value: "L2 norm",
        arrays,
      },
      buffers,
    );
  };
}

/** What ipywidgets.jslink does in the page: a change of one model's trait is set (and saved) on
 *  the other, with a guard against the echo. */
function jslink(a: FakeModel<any>, b: FakeModel<any>) {
  let updating = false;
  const copy = (from: FakeModel<any>, to: FakeModel<any>) => () => {
    if (updating) return;
    updating = true;
    try {
      to.set("token_hover", from.get("token_hover"));
      to.save_changes();
    } finally {
      updating = false;
    }
  };
  a.on("change:token_hover", copy(a, b));
  b.on("change:token_hover", copy(b, a));
}

async function pair(withSpans = true, rightStack = true) {
  const left = model();
  const right = model();
  answer(left, GPT, withSpans);
  answer(right, BERT, true, rightStack);
  jslink(left, right);
  renderBrowser(left.asModel(), els[0]);
  renderBrowser(right.asModel(), els[1]);
  await tick();
  await tick();
  return { left, right };
}

const chips = (el: HTMLElement) => [...el.querySelectorAll<HTMLElement>(".nbfeat-token")];
const linked = (el: HTMLElement) => chips(el).flatMap((c, i) => (c.classList.contains("nbfeat-linked") ? [i] : []));
const hover = (el: HTMLElement, i: number) => chips(el)[i].dispatchEvent(new MouseEvent("mouseenter"));

describe("overlapping: tokens linked by characters", () => {
  it("links tokens of two tokenizers that share characters, never by position", () => {
    expect(overlapping(BERT.spans, [2, 6])).toEqual([2, 3]); // " know" -> "kn" "##ow"
    expect(overlapping(GPT.spans, [7, 9])).toEqual([2]); // "ca" -> " caf"
    expect(overlapping(GPT.spans, [9, 11])).toEqual([2, 3, 4]); // "fé" -> " caf", "é" and its second byte
    expect(overlapping(BERT.spans, [10, 11])).toEqual([5]); // a split character: the whole "fé"
  });

  it("added tokens link to the other's added token at the same end, or to nothing", () => {
    expect(overlapping(BERT.spans, [-1, 0])).toEqual([0]);
    expect(overlapping(BERT.spans, [AFTER, AFTER + 1])).toEqual([6]);
    expect(overlapping(GPT.spans, [-1, 0])).toEqual([]); // GPT-2 adds nothing
    expect(overlapping(GPT.spans, [AFTER, AFTER + 1])).toEqual([]);
  });

  it("empty spans and no span link nothing; half-open ends do not touch", () => {
    expect(overlapping(BERT.spans, [])).toEqual([]);
    expect(overlapping(BERT.spans, [3, 3])).toEqual([]);
    expect(overlapping([3, 3, 0, 5], [2, 4])).toEqual([1]);
    expect(overlapping(BERT.spans, [1, 2])).toEqual([]); // the space between "I" and "know"
  });
});

describe("tokenLink: the synced end of the hover link", () => {
  it("publishes a new span once, saves it, and hands only the other's spans to the view", () => {
    const m = model();
    const key = {};
    const link = tokenLink(m.asModel(), key);
    expect(tokenLink(m.asModel(), key)).toBe(link); // one per view
    const got: number[][] = [];
    link.listen((s) => got.push(s));
    link.publish([2, 6]);
    link.publish([2, 6]);
    expect(m.get("token_hover")).toEqual([2, 6]);
    expect(m.saved).toBe(1);
    expect(got).toEqual([]); // its own hover is not a link
    m.fromKernel({ token_hover: [7, 9] }); // jslink copying the other browser's hover
    expect(got).toEqual([[7, 9]]);
    expect(link.remote()).toEqual([7, 9]);
    link.publish([0, 1]);
    expect(link.remote()).toEqual([]);
  });
});

describe("two browsers linked by the hovered token's characters", () => {
  it("hovering a token outlines the other model's overlapping tokens and draws their trajectories", async () => {
    const { left, right } = await pair();
    const [a, b] = els;
    hover(a, 1); // GPT-2 " know"
    expect(left.get("token_hover")).toEqual([2, 6]);
    expect(right.get("token_hover")).toEqual([2, 6]);
    expect(linked(b)).toEqual([2, 3]); // "kn" "##ow"
    expect(linked(a)).toEqual([]);
    expect(chips(a)[1].classList.contains("nbfeat-hover")).toBe(true);
    const traj = b.querySelector<HTMLElement>(".nbfeat-trajectory") as HTMLElement;
    expect(traj.dataset.linked).toBe("2,3");
    expect(traj.querySelectorAll("polyline")).toHaveLength(2);
    expect(traj.querySelectorAll("circle")).toHaveLength(2 * L);
    expect(traj.textContent).toContain('token 2 " kn"');
    expect(traj.textContent).toContain('token 3 "ow"');
    expect(traj.textContent).toContain("characters 2–6");
    // the hovering browser shows its own token's trajectory
    const own = a.querySelector<HTMLElement>(".nbfeat-trajectory") as HTMLElement;
    expect(own.dataset.token).toBe("1");
    expect(own.querySelectorAll("polyline")).toHaveLength(1);
  });

  it("works both ways; one overlapping token: its trajectory alone", async () => {
    const { left } = await pair();
    const [a, b] = els;
    hover(b, 4); // BERT "ca"
    expect(left.get("token_hover")).toEqual([7, 9]);
    expect(linked(a)).toEqual([2]);
    const traj = a.querySelector<HTMLElement>(".nbfeat-trajectory") as HTMLElement;
    expect(traj.querySelectorAll("polyline")).toHaveLength(1);
    expect(linked(b)).toEqual([]); // the hovered side clears the outlines it had
    hover(a, 4); // the second byte of é: the whole character
    expect(linked(b)).toEqual([5]);
  });

  it("[CLS] has no partner in a model that adds nothing; the trajectory says so", async () => {
    await pair();
    const [a, b] = els;
    hover(b, 0);
    expect(linked(a)).toEqual([]);
    expect(a.querySelector(".nbfeat-trajectory")?.textContent).toContain("no token of this model overlaps the token added before the text");
    hover(b, 6); // [SEP]
    expect(linked(a)).toEqual([]);
    expect(a.querySelector(".nbfeat-trajectory")?.textContent).toContain("overlaps the token added after the text");
  });

  it("the link survives a re-render of the linked browser (another layer)", async () => {
    const { right } = await pair();
    const [a, b] = els;
    hover(a, 2); // " caf"
    expect(linked(b)).toEqual([4, 5]);
    right.fromKernel({ layer: "h.2" });
    await tick();
    await tick();
    expect(linked(b)).toEqual([4, 5]);
    hover(a, 0);
    expect(linked(b)).toEqual([1]);
  });

  it("a model without a token-by-layer stack still outlines the linked tokens", async () => {
    await pair(true, false);
    const [a, b] = els;
    expect(b.querySelector(".nbfeat-stack")).toBeNull();
    hover(a, 1); // " know"
    expect(linked(b)).toEqual([2, 3]);
    hover(b, 5); // "fé", published from a chip alone: " caf" (its f), "é" and its second byte
    expect(linked(a)).toEqual([2, 3, 4]);
  });

  it("tokens without spans are not linked, and the view says why", async () => {
    const { right } = await pair(false);
    const [a, b] = els;
    hover(a, 1);
    expect(right.get("token_hover")).toEqual([]); // nothing to publish
    hover(b, 1);
    expect(linked(a)).toEqual([]);
    expect(a.querySelector(".nbfeat-link-note")?.textContent).toContain("no character spans");
  });
});
