// Colour maps and canvas painting for uint8 images and heatmaps.

// viridis at 9 stops, linearly interpolated to 256 entries
const VIRIDIS = [
  [68, 1, 84],
  [71, 44, 122],
  [59, 81, 139],
  [44, 113, 142],
  [33, 144, 141],
  [39, 173, 129],
  [92, 200, 99],
  [170, 220, 50],
  [253, 231, 37],
];

export const LUT: Uint8Array = (() => {
  const lut = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (VIRIDIS.length - 1);
    const a = Math.floor(t);
    const b = Math.min(VIRIDIS.length - 1, a + 1);
    const f = t - a;
    for (let c = 0; c < 3; c++) lut[3 * i + c] = Math.round(VIRIDIS[a][c] * (1 - f) + VIRIDIS[b][c] * f);
  }
  return lut;
})();

/** Scale floats to 0..255 (NaN -> 0) with the given range. */
export function toBytes(values: ArrayLike<number>, lo: number, hi: number): Uint8Array {
  const out = new Uint8Array(values.length);
  const span = hi > lo ? hi - lo : 1;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    out[i] = Number.isFinite(v) ? Math.max(0, Math.min(255, Math.round(((v - lo) / span) * 255))) : 0;
  }
  return out;
}

export function finiteRange(values: ArrayLike<number>): [number, number] {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isFinite(v)) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  return lo <= hi ? [lo, hi] : [0, 1];
}

function paint(canvas: HTMLCanvasElement, w: number, h: number, fill: (px: Uint8ClampedArray) => void): void {
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  if (!ctx) return; // no canvas support (unit tests): the element still carries its size
  const img = ctx.createImageData(w, h);
  fill(img.data);
  ctx.putImageData(img, 0, 0);
}

/** Paint an (h, w, 3) uint8 RGB image. */
export function paintRGB(canvas: HTMLCanvasElement, rgb: Uint8Array, h: number, w: number): void {
  paint(canvas, w, h, (px) => {
    for (let i = 0; i < h * w; i++) {
      px[4 * i] = rgb[3 * i];
      px[4 * i + 1] = rgb[3 * i + 1];
      px[4 * i + 2] = rgb[3 * i + 2];
      px[4 * i + 3] = 255;
    }
  });
}

/** Paint an (h, w) uint8 heatmap through the colour map. */
export function paintHeat(canvas: HTMLCanvasElement, values: Uint8Array, h: number, w: number, offset = 0): void {
  paint(canvas, w, h, (px) => {
    for (let i = 0; i < h * w; i++) {
      const v = values[offset + i];
      px[4 * i] = LUT[3 * v];
      px[4 * i + 1] = LUT[3 * v + 1];
      px[4 * i + 2] = LUT[3 * v + 2];
      px[4 * i + 3] = 255;
    }
  });
}
