import { describe, expect, it } from "vitest";
import { decode, decodeAll, halfToFloat } from "../src/codec";

describe("codec", () => {
  it("decodes float16 bit patterns", () => {
    expect(halfToFloat(0x3c00)).toBe(1);
    expect(halfToFloat(0xc000)).toBe(-2);
    expect(halfToFloat(0x7bff)).toBe(65504);
    expect(halfToFloat(0x0001)).toBeCloseTo(5.96e-8, 10);
    expect(halfToFloat(0x7c00)).toBe(Number.POSITIVE_INFINITY);
    expect(Number.isNaN(halfToFloat(0x7e00))).toBe(true);
  });
  it("decodes float16 from an unaligned DataView", () => {
    const bytes = new Uint8Array([0xff, 0x00, 0x3c, 0x00, 0xc0]); // 1 byte of padding first
    const arr = decode({ name: "v", dtype: "float16", shape: [2] }, new DataView(bytes.buffer, 1, 4));
    expect(Array.from(arr.data)).toEqual([1, -2]);
  });
  it("keeps uint8 as a view and checks sizes", () => {
    const buf = new Uint8Array([1, 2, 3, 4, 5, 6]);
    const arr = decode({ name: "img", dtype: "uint8", shape: [1, 2, 3] }, buf);
    expect(arr.data).toBeInstanceOf(Uint8Array);
    expect(Array.from(arr.data)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(() => decode({ name: "img", dtype: "uint8", shape: [2, 2, 3] }, buf)).toThrow(/6 bytes/);
  });
  it("decodes float32 and int32 little-endian", () => {
    const f = new Float32Array([1.5, -3]);
    expect(Array.from(decode({ name: "f", dtype: "float32", shape: [2] }, f.buffer).data)).toEqual([1.5, -3]);
    const i = new Int32Array([7, -9]);
    expect(Array.from(decode({ name: "i", dtype: "int32", shape: [2] }, i).data)).toEqual([7, -9]);
  });
  it("pairs specs with buffers", () => {
    const m = decodeAll([{ name: "a", dtype: "uint8", shape: [1] }], [new Uint8Array([9])]);
    expect(m.get("a")?.data[0]).toBe(9);
    expect(() => decodeAll([{ name: "a", dtype: "uint8", shape: [1] }], [])).toThrow(/1 array specs but 0 buffers/);
  });
});

import { LUT, paintHeat, paintRGB, toBytes } from "../src/colormap";

describe("painting", () => {
  it("paints RGB pixels opaque", () => {
    const c = document.createElement("canvas") as HTMLCanvasElement & { painted?: { data: Uint8ClampedArray } };
    paintRGB(c, new Uint8Array([10, 20, 30, 40, 50, 60]), 1, 2);
    expect([c.width, c.height]).toEqual([2, 1]);
    expect(Array.from(c.painted?.data ?? [])).toEqual([10, 20, 30, 255, 40, 50, 60, 255]);
  });
  it("paints heatmaps through the colour map, from an offset", () => {
    const c = document.createElement("canvas") as HTMLCanvasElement & { painted?: { data: Uint8ClampedArray } };
    paintHeat(c, new Uint8Array([0, 0, 255, 0]), 1, 2, 2);
    expect(Array.from(c.painted?.data.slice(0, 4) ?? [])).toEqual([LUT[765], LUT[766], LUT[767], 255]);
    expect(Array.from(c.painted?.data.slice(4, 7) ?? [])).toEqual([LUT[0], LUT[1], LUT[2]]);
  });
  it("scales values to bytes, NaN to 0", () => {
    expect(Array.from(toBytes([0, 5, 10, Number.NaN], 0, 10))).toEqual([0, 128, 255, 0]);
  });
});
