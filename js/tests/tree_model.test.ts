import { describe, expect, it } from "vitest";
import { formatParams, formatShape, TreeModel } from "../src/tree_model";
import { vitRows } from "./rows";

describe("TreeModel: structure and collapsing", () => {
  it("starts with the top-level modules visible and deeper ones collapsed", () => {
    const t = new TreeModel(vitRows(3));
    expect(t.visiblePaths()).toEqual(["", "patch_embed", "blocks", "norm", "head"]);
    expect(t.isCollapsed("blocks")).toBe(true);
  });
  it("toggles, expands and collapses", () => {
    const t = new TreeModel(vitRows(2));
    t.toggle("blocks");
    expect(t.visiblePaths()).toEqual(["", "patch_embed", "blocks", "blocks.0", "blocks.1", "norm", "head"]);
    t.toggle("blocks.1");
    expect(t.visiblePaths()).toContain("blocks.1.attn");
    expect(t.visiblePaths()).not.toContain("blocks.1.attn.qkv");
    t.expandAll();
    expect(t.visiblePaths()).toHaveLength(t.rows.length);
    t.collapseAll();
    expect(t.visiblePaths()).toEqual(["", "patch_embed", "blocks", "norm", "head"]);
  });
  it("toggling a leaf does nothing", () => {
    const t = new TreeModel(vitRows(1));
    t.toggle("head");
    expect(t.visiblePaths()).toEqual(["", "patch_embed", "blocks", "norm", "head"]);
  });
});

describe("TreeModel: search filter", () => {
  it("substring search shows matches with their ancestors", () => {
    const t = new TreeModel(vitRows(3));
    t.setQuery("qkv");
    expect(t.matchCount).toBe(3);
    expect(t.visiblePaths()).toEqual([
      "",
      "blocks",
      "blocks.0",
      "blocks.0.attn",
      "blocks.0.attn.qkv",
      "blocks.1",
      "blocks.1.attn",
      "blocks.1.attn.qkv",
      "blocks.2",
      "blocks.2.attn",
      "blocks.2.attn.qkv",
    ]);
    expect(t.isMatch("blocks.1.attn.qkv")).toBe(true);
    expect(t.isMatch("blocks.1.attn")).toBe(false);
  });
  it("matches the type, case-insensitively", () => {
    const t = new TreeModel(vitRows(2));
    t.setQuery("ATTENTION");
    expect(t.matchCount).toBe(2);
  });
  it("a glob matches whole paths", () => {
    const t = new TreeModel(vitRows(4));
    t.setQuery("blocks.*.attn");
    expect(t.matchCount).toBe(4);
    expect(t.visiblePaths().filter((p) => t.isMatch(p))).toEqual(["blocks.0.attn", "blocks.1.attn", "blocks.2.attn", "blocks.3.attn"]);
  });
  it("clearing the query restores the collapsed view", () => {
    const t = new TreeModel(vitRows(2));
    t.setQuery("fc1");
    t.setQuery("");
    expect(t.searching).toBe(false);
    expect(t.visiblePaths()).toEqual(["", "patch_embed", "blocks", "norm", "head"]);
  });
  it("no match shows nothing", () => {
    const t = new TreeModel(vitRows(2));
    t.setQuery("nonexistent");
    expect(t.visiblePaths()).toEqual([]);
  });
});

describe("TreeModel: selection", () => {
  it("plain click selects one row", () => {
    const t = new TreeModel(vitRows(2));
    t.click("patch_embed");
    t.click("norm");
    expect(t.selected).toEqual(["norm"]);
    expect(t.focused).toBe("norm");
  });
  it("ctrl-click toggles rows in and out", () => {
    const t = new TreeModel(vitRows(2));
    t.click("head");
    t.click("patch_embed", { ctrl: true });
    expect(t.selected).toEqual(["patch_embed", "head"]); // tree order
    t.click("head", { ctrl: true });
    expect(t.selected).toEqual(["patch_embed"]);
  });
  it("shift-click selects the visible range from the anchor, either direction", () => {
    const t = new TreeModel(vitRows(3));
    t.toggle("blocks");
    t.click("blocks.0");
    t.click("blocks.2", { shift: true });
    expect(t.selected).toEqual(["blocks.0", "blocks.1", "blocks.2"]);
    t.click("patch_embed", { shift: true });
    expect(t.selected).toEqual(["patch_embed", "blocks", "blocks.0"]);
  });
  it("shift-click skips rows hidden in collapsed subtrees and never selects the root", () => {
    const t = new TreeModel(vitRows(2));
    t.click("head");
    t.click("patch_embed", { shift: true });
    expect(t.selected).toEqual(["patch_embed", "blocks", "norm", "head"]);
    t.click("head");
    t.click("", { shift: true });
    expect(t.selected).not.toContain("");
  });
  it("ctrl+shift adds a range to the selection", () => {
    const t = new TreeModel(vitRows(2));
    t.click("head");
    t.click("patch_embed", { ctrl: true });
    t.click("blocks", { shift: true, ctrl: true });
    expect(t.selected).toEqual(["patch_embed", "blocks", "head"]);
  });
  it("pattern selection selects every match and reveals it", () => {
    const t = new TreeModel(vitRows(12));
    const hits = t.selectPattern("blocks.*.attn");
    expect(hits).toHaveLength(12);
    expect(t.selected).toEqual(Array.from({ length: 12 }, (_, i) => `blocks.${i}.attn`));
    expect(t.visiblePaths()).toContain("blocks.11.attn");
    expect(t.selectPattern("blocks.1?.mlp")).toEqual(["blocks.10.mlp", "blocks.11.mlp"]);
  });
  it("Enter in the search selects the matches", () => {
    const t = new TreeModel(vitRows(3));
    t.setQuery("fc1");
    expect(t.selectMatches()).toEqual(["blocks.0.mlp.fc1", "blocks.1.mlp.fc1", "blocks.2.mlp.fc1"]);
  });
  it("selection from Python drops unknown paths and reveals the rest", () => {
    const t = new TreeModel(vitRows(3));
    t.setSelected(["blocks.2.attn.proj", "nope"]);
    expect(t.selected).toEqual(["blocks.2.attn.proj"]);
    expect(t.visiblePaths()).toContain("blocks.2.attn.proj");
  });
});

describe("formatting", () => {
  it("parameter counts", () => {
    expect(formatParams(0)).toBe("");
    expect(formatParams(512)).toBe("512");
    expect(formatParams(1536)).toBe("1.54K");
    expect(formatParams(86_000_000)).toBe("86.0M");
    expect(formatParams(7_504_924_672)).toBe("7.50B");
  });
  it("shapes", () => {
    expect(formatShape([1, 64, 56, 56])).toBe("1×64×56×56");
    expect(formatShape(null)).toBe("");
  });
});
