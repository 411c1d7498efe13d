import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { renderTree, type TreeState } from "../src/tree_view";
import { FakeModel } from "./fake_model";
import { vitRows } from "./rows";

let el: HTMLElement;
beforeEach(() => {
  el = document.createElement("div");
  document.body.append(el);
});
afterEach(() => el.remove());

function make(depth = 4, extra: Partial<TreeState> = {}) {
  return new FakeModel<TreeState>({
    _kind: "tree",
    title: "vit",
    rows: vitRows(depth),
    selected: [],
    focused: "",
    height: 240,
    note: "",
    ...extra,
  });
}

const rowEls = () => [...el.querySelectorAll<HTMLElement>(".nbfeat-tree-viewport .nbfeat-tree-row:not([hidden])")];
const rowOf = (path: string) => el.querySelector<HTMLElement>(`.nbfeat-tree-viewport .nbfeat-tree-row[data-path="${path}"]`);

describe("tree view", () => {
  it("renders rows from data: name, type, shape, params", () => {
    const m = make();
    renderTree(m.asModel(), el);
    expect(rowEls().map((r) => r.dataset.path)).toEqual(["", "patch_embed", "blocks", "norm", "head"]);
    const cells = [...(rowOf("head") as HTMLElement).children].map((c) => c.textContent);
    expect(cells).toEqual(["head", "Module", "1×8×64", "1.00K", ""]); // no bytes in these rows: blank
    expect(el.querySelector(".nbfeat-tree-status")?.textContent).toBe("32 modules · 0 selected");
  });

  it("a click selects and syncs to the kernel; ctrl and shift extend", () => {
    const m = make();
    renderTree(m.asModel(), el);
    rowOf("patch_embed")?.click();
    expect(m.state.selected).toEqual(["patch_embed"]);
    expect(m.state.focused).toBe("patch_embed");
    expect(m.saved).toBe(1);
    rowOf("norm")?.dispatchEvent(new MouseEvent("click", { bubbles: true, shiftKey: true }));
    expect(m.state.selected).toEqual(["patch_embed", "blocks", "norm"]);
    rowOf("blocks")?.dispatchEvent(new MouseEvent("click", { bubbles: true, ctrlKey: true }));
    expect(m.state.selected).toEqual(["patch_embed", "norm"]);
    expect(rowOf("norm")?.classList.contains("nbfeat-selected")).toBe(true);
    expect(rowOf("blocks")?.getAttribute("aria-selected")).toBe("false");
  });

  it("the caret expands without selecting", () => {
    const m = make(3);
    renderTree(m.asModel(), el);
    rowOf("blocks")?.querySelector<HTMLElement>(".nbfeat-tree-caret")?.click();
    expect(rowEls().map((r) => r.dataset.path)).toContain("blocks.2");
    expect(m.state.selected).toEqual([]);
    expect(rowOf("blocks")?.getAttribute("aria-expanded")).toBe("true");
  });

  it("a pattern in the search box selects on Enter", () => {
    const m = make(6);
    renderTree(m.asModel(), el);
    const search = el.querySelector<HTMLInputElement>(".nbfeat-tree-search") as HTMLInputElement;
    search.value = "blocks.*.attn";
    search.dispatchEvent(new Event("input"));
    expect(el.querySelector(".nbfeat-tree-status")?.textContent).toContain("6 matches");
    search.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
    expect(m.state.selected).toEqual(Array.from({ length: 6 }, (_, i) => `blocks.${i}.attn`));
  });

  it("selection set in Python shows and scrolls into view", () => {
    const m = make(30);
    renderTree(m.asModel(), el);
    m.fromKernel({ selected: ["blocks.29.mlp.fc1"] });
    const row = rowOf("blocks.29.mlp.fc1");
    expect(row?.classList.contains("nbfeat-selected")).toBe(true);
    expect(m.saved).toBe(0); // no echo back to the kernel
  });

  it("virtualises: a 5000-module tree renders only the rows in view", () => {
    const m = make(800);
    renderTree(m.asModel(), el);
    el.querySelector<HTMLElement>('[data-action="expand"]')?.click();
    const spacer = el.querySelector<HTMLElement>(".nbfeat-vlist-spacer") as HTMLElement;
    expect(m.state.rows.length).toBeGreaterThan(5000);
    expect(spacer.style.height).toBe(`${m.state.rows.length * 24}px`);
    expect(rowEls().length).toBeLessThanOrEqual(Math.ceil(240 / 24) + 16);
    const viewport = el.querySelector<HTMLElement>(".nbfeat-tree-viewport") as HTMLElement;
    viewport.scrollTop = 24 * 3000;
    viewport.dispatchEvent(new Event("scroll"));
    return new Promise<void>((resolve) =>
      requestAnimationFrame(() => {
        const paths = rowEls().map((r) => Number(r.style.top.replace("px", "")) / 24);
        expect(Math.min(...paths)).toBeGreaterThanOrEqual(3000 - 8);
        expect(Math.max(...paths)).toBeLessThanOrEqual(3000 + 10 + 8);
        resolve();
      }),
    );
  });

  it("new rows from Python rebuild the tree; cleanup removes every handler", () => {
    const m = make(2);
    const cleanup = renderTree(m.asModel(), el);
    m.fromKernel({ rows: vitRows(5) });
    expect(el.querySelector(".nbfeat-tree-status")?.textContent).toContain("39 modules");
    m.fromKernel({ selected: ["blocks.4.attn"] });
    expect(rowOf("blocks.4.attn")?.classList.contains("nbfeat-selected")).toBe(true);
    cleanup();
    expect(m.listenerCount()).toBe(0);
    expect(el.querySelector(".nbfeat-tree")).toBeNull();
  });
});

describe("sizes and the explorer's note", () => {
  it("shows each row's bytes per sample and the note under the list", async () => {
    const { formatBytes } = await import("../src/tree_model");
    expect(formatBytes(1536)).toBe("1.5 KB");
    expect(formatBytes(401408)).toBe("392.0 KB");
    expect(formatBytes(null)).toBe("");
    const rows = vitRows(2).map((r) => ({ ...r, bytes: r.path ? 2048 : null }));
    const m = make(2, { rows, note: "full extraction: 3 MB" });
    renderTree(m.asModel(), el);
    const first = rowEls().find((r) => r.dataset.path);
    expect(first?.querySelector(".nbfeat-tree-bytes")?.textContent).toBe("2.0 KB");
    expect(el.querySelector(".nbfeat-tree-note")?.textContent).toBe("full extraction: 3 MB");
    m.fromKernel({ note: "changed" });
    expect(el.querySelector(".nbfeat-tree-note")?.textContent).toBe("changed");
    expect(el.querySelector(".nbfeat-tree-title")?.textContent).toBe("vit");
  });
});

describe("splitter", () => {
  it("keeps the tree width within bounds", async () => {
    const { dragWidth } = await import("../src/splitter_view");
    expect(dragWidth(500, 100, 160, 260, 900)).toBe(560);
    expect(dragWidth(500, 100, -400, 260, 900)).toBe(260);
    expect(dragWidth(500, 100, 2000, 260, 900)).toBe(900);
  });
});
