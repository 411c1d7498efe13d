// The activation browser: for one sample and one layer, the input, a PCA-to-RGB map, the most
// active channels; for text, a token-by-layer heatmap with a per-token trajectory on hover.
// Arrays come on request (see rpc.ts), only for what is on screen.
import type { AnyModel } from "@anywidget/types";
import type { NdArray } from "./codec";
import { finiteRange, paintHeat, paintRGB } from "./colormap";
import { button, fmt, h, listen } from "./dom";
import { clearPatch, clickFraction, type LinkedMap, outlinePatch, similarityRow, stripRow } from "./linked_views";
import { insertCellBelow } from "./notebook_cell";
import { type Reply, Rpc } from "./rpc";
import { tokenLink, tokenView } from "./token_view";

export interface SampleInfo {
  id: string;
  label: string;
}

export interface BrowserState {
  _kind: "browser";
  title: string;
  modality: "image" | "text";
  samples: SampleInfo[];
  layers: string[];
  sample: number;
  layer: string;
  channel: number;
  depth: number;
  n_top: number;
  linked_layers: string[];
  code: string;
  /** The clicked patch [fy, fx] (fractions of the model's input), or [] for none. */
  patch?: number[];
}

export interface ViewMeta {
  view: "spatial" | "tokens" | "vector" | "empty";
  layer: string;
  sample: number;
  info: string;
  n_depth: number;
  depth_label: string;
  channels: number[];
  channel_max: number[];
  n_channels: number;
  pca_note: string;
  tokens: string[];
  stack_labels: string[];
  stack_row: number;
  stack_value: string;
  /** The thumbnail is the input as the model saw it (resized and cropped): clicks on it pick a patch. */
  thumb_seen?: boolean;
}

interface Thumb {
  arr: NdArray;
  seen: boolean;
}

/** Render the browser widget into `el`; returns the cleanup. */
export function renderBrowser(model: AnyModel<BrowserState>, el: HTMLElement): () => void {
  const rpc = new Rpc(model);
  const thumbs = new Map<number, Thumb>();

  const sampleSel = h("select", { className: "nbfeat-sample", attrs: { "aria-label": "Sample" } });
  const layerSel = h("select", { className: "nbfeat-layer", attrs: { "aria-label": "Layer" } });
  const depthSel = h("select", { className: "nbfeat-depth", attrs: { "aria-label": "Depth" } });
  const channelIn = h("input", {
    className: "nbfeat-channel",
    attrs: { type: "number", min: "-1", step: "1", "aria-label": "Channel", title: "-1: the most active channels" },
  });
  const depthBox = h("label", { className: "nbfeat-field" }, "depth ", depthSel);
  const toolbar = h(
    "div",
    { className: "nbfeat-toolbar" },
    button("◀", "prev", "Previous sample"),
    h("label", { className: "nbfeat-field" }, "sample ", sampleSel),
    button("▶", "next", "Next sample"),
    h("label", { className: "nbfeat-field" }, "layer ", layerSel),
    depthBox,
    h("label", { className: "nbfeat-field" }, "channel ", channelIn),
    button("Top channels", "top", "Show the most active channels"),
  );
  const title = h("div", { className: "nbfeat-title" });
  const status = h("div", { className: "nbfeat-status nbfeat-browser-status" });
  const main = h("div", { className: "nbfeat-browser-main" });
  const channelsBox = h("div", { className: "nbfeat-channels" });
  const stripBox = h("div", { className: "nbfeat-linked-box nbfeat-strip-box" });
  const simBox = h("div", { className: "nbfeat-linked-box nbfeat-sim-box" });
  const codePre = h("pre", { className: "nbfeat-code-text" });
  const copyBtn = button("Copy code", "copy", "Copy the code that reproduces this view (run it in a fresh kernel)");
  const cellBtn = button("To cell", "to-cell", "Insert the code as a new cell below (copies it where there is no notebook)");
  const codeBox = h("div", { className: "nbfeat-code" }, codePre, h("div", { className: "nbfeat-code-actions" }, copyBtn, cellBtn));
  const root = h("div", { className: "nbfeat-browser" }, title, toolbar, status, main, simBox, stripBox, channelsBox, codeBox);
  el.classList.add("nbfeat-widget");
  el.append(root);

  const fillSelects = () => {
    title.textContent = model.get("title") ?? "";
    const samples = model.get("samples") ?? [];
    sampleSel.replaceChildren(
      ...samples.map((s, i) => h("option", { text: s.label ? `${s.id} (${s.label})` : s.id, attrs: { value: String(i) } })),
    );
    const layers = model.get("layers") ?? [];
    layerSel.replaceChildren(...layers.map((l) => h("option", { text: l, attrs: { value: l } })));
    syncControls();
  };
  const syncControls = () => {
    sampleSel.value = String(model.get("sample") ?? 0);
    layerSel.value = model.get("layer") ?? "";
    channelIn.value = String(model.get("channel") ?? -1);
    codePre.textContent = model.get("code") ?? "";
    codeBox.hidden = !model.get("code");
  };

  const setState = (changes: Partial<BrowserState>) => {
    for (const [k, v] of Object.entries(changes)) model.set(k as keyof BrowserState, v as never);
    model.save_changes();
    schedule();
  };

  let latest = 0;
  let queued = false;
  const schedule = () => {
    // coalesce several trait changes (sample + layer from Python) into one request
    if (queued) return;
    queued = true;
    queueMicrotask(() => {
      queued = false;
      void load();
    });
  };

  const load = async () => {
    syncControls();
    const layer = model.get("layer");
    if (!layer) {
      status.textContent = "Pick a layer (in the tree, or above).";
      main.replaceChildren();
      channelsBox.replaceChildren();
      simBox.replaceChildren();
      stripBox.replaceChildren();
      return;
    }
    const sample = model.get("sample") ?? 0;
    const ticket = ++latest;
    status.classList.remove("nbfeat-error");
    status.textContent = `${layer}: loading…`;
    root.dataset.state = "loading";
    try {
      const reply = await rpc.request("view", {
        sample,
        layer,
        channel: model.get("channel") ?? -1,
        depth: model.get("depth") ?? 0,
        k: model.get("n_top") ?? 12,
        thumb: !thumbs.has(sample),
      });
      if (ticket !== latest) return; // a newer request superseded this one
      const thumb = reply.arrays.get("thumb");
      if (thumb) thumbs.set(sample, { arr: thumb, seen: Boolean((reply.meta as unknown as ViewMeta).thumb_seen) });
      show(reply, thumbs.get(sample));
      root.dataset.state = "ready";
      root.dataset.layer = layer;
      const spatial = (reply.meta as unknown as ViewMeta).view === "spatial";
      if (spatial) void loadStrip(sample, layer);
      else stripBox.replaceChildren();
      shownSpatial = spatial;
      onPatch();
    } catch (e) {
      if (ticket !== latest) return;
      status.textContent = (e as Error).message;
      status.classList.add("nbfeat-error");
      root.dataset.state = "error";
    }
  };

  // the linked views: a clicked patch (the `patch` trait, kept across layers and samples) and
  // the layer strip
  let shownSpatial = false;
  let simTicket = 0;
  const onPatch = () => {
    const patch = model.get("patch") ?? [];
    if (shownSpatial && patch.length === 2) void loadSimilarity(patch[0], patch[1]);
    else {
      ++simTicket; // a reply still on its way is for a patch no longer clicked
      simBox.replaceChildren();
      delete simBox.dataset.patch;
      clearPatch(main);
    }
  };
  let stripTicket = 0;
  const loadSimilarity = async (fy: number, fx: number) => {
    const ticket = ++simTicket;
    const layer = model.get("layer");
    simBox.dataset.state = "loading";
    try {
      const reply = await rpc.request("similarity", { sample: model.get("sample") ?? 0, layer, depth: model.get("depth") ?? 0, fy, fx });
      if (ticket !== simTicket) return;
      const arr = reply.arrays.get("similarity");
      const maps = (reply.meta.maps ?? []) as LinkedMap[];
      if (!arr) return;
      const skipped = (reply.meta.skipped ?? []) as string[];
      simBox.replaceChildren(
        h("div", {
          className: "nbfeat-caption",
          text: `cosine similarity to the clicked patch (outlined), at ${layer} and the linked layers${skipped.length ? ` (no spatial map: ${skipped.join(", ")})` : ""}`,
        }),
        similarityRow(maps, arr, layer),
      );
      simBox.dataset.state = "ready";
      simBox.dataset.patch = `${fy.toFixed(3)},${fx.toFixed(3)}`;
      // the patch at the shown layer, outlined where it was clicked: the input and the PCA map
      const here = maps.find((m) => m.layer === layer) ?? maps[0];
      clearPatch(main);
      if (here?.patch) {
        for (const fig of main.querySelectorAll<HTMLElement>("[data-panel='pca'], [data-panel='input'][data-seen='true']"))
          outlinePatch(fig, here.grid, here.patch);
      }
    } catch (e) {
      if (ticket !== simTicket) return;
      simBox.replaceChildren(h("div", { className: "nbfeat-note nbfeat-error", text: (e as Error).message }));
      simBox.dataset.state = "error";
    }
  };
  const loadStrip = async (sample: number, layer: string) => {
    const linked = model.get("linked_layers") ?? [];
    if (linked.length < 2) {
      stripBox.replaceChildren();
      return;
    }
    const ticket = ++stripTicket;
    stripBox.dataset.state = "loading";
    try {
      const reply = await rpc.request("strip", { sample });
      if (ticket !== stripTicket) return;
      const arr = reply.arrays.get("strip");
      if (!arr) return;
      stripBox.replaceChildren(
        h("div", { className: "nbfeat-caption", text: "layer strip: PCA → RGB at each linked layer (click one to show it)" }),
        stripRow((reply.meta.strip ?? []) as LinkedMap[], arr, layer),
      );
      stripBox.dataset.state = "ready";
    } catch (e) {
      if (ticket !== stripTicket) return;
      stripBox.replaceChildren(h("div", { className: "nbfeat-note", text: (e as Error).message }));
      stripBox.dataset.state = "error";
    }
  };

  const show = (reply: Reply, thumb: Thumb | undefined) => {
    const meta = reply.meta as unknown as ViewMeta;
    status.textContent = meta.info;
    const n = meta.n_depth ?? 0;
    depthBox.hidden = n <= 1;
    if (n > 1) {
      depthSel.replaceChildren(
        ...Array.from({ length: n }, (_, i) => h("option", { text: `${meta.depth_label} ${i}`, attrs: { value: String(i) } })),
      );
      depthSel.value = String(Math.min(model.get("depth") ?? 0, n - 1));
    }
    main.replaceChildren();
    channelsBox.replaceChildren();
    if (thumb) {
      // clickable only where it is what the model saw: a click fraction on the original image
      // is not the same place in the feature map once the input was cropped
      const clickable = thumb.seen && meta.view === "spatial";
      const fig = figure(
        "input",
        patchable(rgbCanvas(thumb.arr, "nbfeat-thumb")),
        thumb.seen ? `input as the model sees it${clickable ? " · click a patch" : ""}` : "input (original image)",
      );
      fig.dataset.seen = String(thumb.seen);
      fig.title = thumb.seen ? "The input after the model's resize and crop" : "The original image (the model saw it resized and cropped)";
      if (clickable) {
        fig.classList.add("nbfeat-clickable");
        fig.title += "; click a patch: its cosine similarity here and at the linked layers";
      }
      main.append(fig);
    }
    const pca = reply.arrays.get("pca");
    if (meta.view === "spatial") {
      if (pca) {
        const fig = figure("pca", patchable(rgbCanvas(pca, "nbfeat-pca")), "PCA → RGB · click a patch");
        fig.classList.add("nbfeat-clickable");
        fig.title = "Click a patch: its cosine similarity here and at the linked layers";
        main.append(fig);
      } else if (meta.pca_note) main.append(h("div", { className: "nbfeat-note", text: meta.pca_note }));
      const ch = reply.arrays.get("channels");
      if (ch) channelsBox.append(...channelTiles(ch, meta));
    } else if (meta.view === "tokens") {
      main.append(tokenView(reply, meta, tokenLink(model, main)));
    } else if (meta.view === "vector") {
      main.append(vectorView(reply, meta));
    }
  };

  const channelTiles = (ch: NdArray, meta: ViewMeta): HTMLElement[] => {
    const [k, hh, ww] = ch.shape;
    return Array.from({ length: k }, (_, i) => {
      const c = h("canvas", { className: "nbfeat-heat" });
      paintHeat(c, ch.data as Uint8Array, hh, ww, i * hh * ww);
      const tile = figure("channel", c, `ch ${meta.channels[i]} · max ${fmt(meta.channel_max[i])}`);
      tile.dataset.channel = String(meta.channels[i]);
      tile.title = "Click to show this channel alone";
      return tile;
    });
  };

  const vectorView = (reply: Reply, meta: ViewMeta): HTMLElement => {
    const box = h("div", { className: "nbfeat-vector" });
    const values = reply.arrays.get("values");
    if (values) {
      const [lo, hi] = finiteRange(values.data);
      const top = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
      const bars = h("div", { className: "nbfeat-bars" });
      meta.channels.forEach((c, i) => {
        const v = values.data[i];
        const bar = h("div", { className: "nbfeat-bar" });
        bar.style.width = `${(Math.abs(v) / top) * 100}%`;
        bars.append(
          h(
            "div",
            { className: "nbfeat-bar-row", attrs: { "data-channel": String(c) } },
            h("span", { text: `ch ${c}` }),
            h("div", { className: "nbfeat-bar-track" }, bar),
            h("span", { text: fmt(v) }),
          ),
        );
      });
      box.append(h("div", { className: "nbfeat-caption", text: "most active channels" }), bars);
    }
    const strip = reply.arrays.get("strip");
    if (strip) {
      const c = h("canvas", { className: "nbfeat-heat nbfeat-strip" });
      paintHeat(c, strip.data as Uint8Array, 1, strip.shape[0]);
      box.append(h("div", { className: "nbfeat-caption", text: `all ${meta.n_channels} values` }), c);
    }
    return box;
  };

  const offs = [
    listen(sampleSel, "change", () => setState({ sample: Number(sampleSel.value) })),
    listen(layerSel, "change", () => setState({ layer: layerSel.value, depth: 0, channel: -1 })),
    listen(depthSel, "change", () => setState({ depth: Number(depthSel.value) })),
    listen(channelIn, "change", () => setState({ channel: Math.max(-1, Math.floor(Number(channelIn.value) || 0)) })),
    listen(toolbar, "click", (ev) => {
      const action = (ev.target as HTMLElement).closest<HTMLElement>("[data-action]")?.dataset.action;
      const n = (model.get("samples") ?? []).length;
      const s = model.get("sample") ?? 0;
      if (action === "prev" && n) setState({ sample: (s - 1 + n) % n });
      else if (action === "next" && n) setState({ sample: (s + 1) % n });
      else if (action === "top") setState({ channel: -1 });
    }),
    listen(main, "click", (ev) => {
      const canvas = (ev.target as HTMLElement).closest<HTMLElement>(
        "[data-panel='pca'] canvas, .nbfeat-clickable[data-panel='input'] canvas",
      );
      if (!canvas) return;
      // the same fractions on either picture: both span the model's whole input
      model.set("patch", clickFraction(ev, canvas.getBoundingClientRect()));
      model.save_changes();
    }),
    listen(stripBox, "click", (ev) => {
      const tile = (ev.target as HTMLElement).closest<HTMLElement>("[data-layer]");
      const layer = tile?.dataset.layer;
      if (layer && layer !== model.get("layer") && (model.get("layers") ?? []).includes(layer)) setState({ layer, depth: 0, channel: -1 });
    }),
    listen(channelsBox, "click", (ev) => {
      const tile = (ev.target as HTMLElement).closest<HTMLElement>("[data-channel]");
      if (tile) setState({ channel: Number(tile.dataset.channel) });
    }),
    listen(copyBtn, "click", () => {
      void copyText(model.get("code") ?? "").then((ok) => flash(copyBtn, ok ? "Copied" : "Select and copy", "Copy code"));
    }),
    listen(cellBtn, "click", () => {
      const code = model.get("code") ?? "";
      void insertCellBelow(el, code).then(async (ok) => {
        if (ok) flash(cellBtn, "Inserted below", "To cell");
        else flash(cellBtn, (await copyText(code)) ? "No notebook: copied" : "Select and copy", "To cell");
      });
    }),
  ];

  const onData = () => {
    thumbs.clear();
    fillSelects();
    schedule();
  };
  const onView = () => schedule();
  const onCode = () => syncControls();
  const viewKeys = ["sample", "layer", "channel", "depth", "n_top", "linked_layers"];
  for (const k of viewKeys) model.on(`change:${k}`, onView);
  model.on("change:samples", onData);
  model.on("change:layers", onData);
  model.on("change:title", onData);
  model.on("change:code", onCode);
  model.on("change:patch", onPatch);
  fillSelects();
  schedule();

  return () => {
    for (const off of offs) off();
    for (const k of viewKeys) model.off(`change:${k}`, onView);
    model.off("change:samples", onData);
    model.off("change:layers", onData);
    model.off("change:title", onData);
    model.off("change:code", onCode);
    model.off("change:patch", onPatch);
    rpc.dispose();
    root.remove();
  };
}

function flash(b: HTMLElement, text: string, back: string): void {
  b.textContent = text;
  setTimeout(() => {
    b.textContent = back;
  }, 1500);
}

function figure(kind: string, content: HTMLElement, caption: string): HTMLElement {
  return h("figure", { className: "nbfeat-panel", attrs: { "data-panel": kind } }, content, h("figcaption", { text: caption }));
}

/** A canvas in a box the clicked patch's outline is drawn over (see outlinePatch). */
function patchable(canvas: HTMLCanvasElement): HTMLElement {
  return h("span", { className: "nbfeat-patch-wrap" }, canvas);
}

function rgbCanvas(arr: NdArray, className: string): HTMLCanvasElement {
  const c = h("canvas", { className });
  if (arr.shape.length === 3) paintRGB(c, arr.data as Uint8Array, arr.shape[0], arr.shape[1]);
  return c;
}

async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // no clipboard permission (http, iframe): the old way
    const area = h("textarea", { text });
    document.body.append(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand("copy");
    } catch {
      ok = false;
    }
    area.remove();
    return ok;
  }
}
