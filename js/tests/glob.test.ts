import { describe, expect, it } from "vitest";
import { globMatch, isGlob } from "../src/glob";

describe("glob (Python fnmatchcase rules)", () => {
  it("star crosses dots, like fnmatch", () => {
    expect(globMatch("blocks.*.attn", "blocks.3.attn")).toBe(true);
    expect(globMatch("blocks.*.attn", "blocks.3.sub.attn")).toBe(true);
    expect(globMatch("blocks.*.attn", "blocks.3.attn.qkv")).toBe(false);
  });
  it("question mark, classes and negated classes", () => {
    expect(globMatch("layer?", "layer4")).toBe(true);
    expect(globMatch("layer?", "layer10")).toBe(false);
    expect(globMatch("layer[12]", "layer2")).toBe(true);
    expect(globMatch("layer[!12]", "layer2")).toBe(false);
    expect(globMatch("layer[!12]", "layer3")).toBe(true);
  });
  it("dots and regex characters are literal", () => {
    expect(globMatch("a.b", "axb")).toBe(false);
    expect(globMatch("a+(b)", "a+(b)")).toBe(true);
    expect(globMatch("[", "[")).toBe(true);
  });
  it("is case-sensitive and anchored", () => {
    expect(globMatch("Layer1", "layer1")).toBe(false);
    expect(globMatch("layer", "layer1")).toBe(false);
  });
  it("tells globs from plain text", () => {
    expect(isGlob("blocks.*.attn")).toBe(true);
    expect(isGlob("layer1")).toBe(false);
  });
});
