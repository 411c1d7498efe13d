// Binary arrays from the kernel: each reply lists {name, dtype, shape} specs, one buffer per
// spec, little-endian and C-ordered. float16 is widened to float32 here (no Float16Array
// in every browser yet).

export type DType = "uint8" | "float16" | "float32" | "int32";

export interface ArraySpec {
  name: string;
  dtype: DType;
  shape: number[];
}

export interface NdArray {
  dtype: DType;
  shape: number[];
  data: Uint8Array | Float32Array | Int32Array;
}

const SIZES: Record<DType, number> = { uint8: 1, float16: 2, float32: 4, int32: 4 };

export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 0x1f) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

function asView(buf: DataView | ArrayBuffer | ArrayBufferView): DataView {
  if (buf instanceof DataView) return buf;
  if (buf instanceof ArrayBuffer) return new DataView(buf);
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

export function decode(spec: ArraySpec, buf: DataView | ArrayBuffer | ArrayBufferView): NdArray {
  const view = asView(buf);
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const size = SIZES[spec.dtype];
  if (size === undefined) throw new Error(`unsupported dtype ${spec.dtype}`);
  if (view.byteLength !== n * size) {
    throw new Error(`array ${spec.name}: ${view.byteLength} bytes for shape [${spec.shape}] ${spec.dtype}`);
  }
  let data: NdArray["data"];
  if (spec.dtype === "uint8") {
    data = new Uint8Array(view.buffer, view.byteOffset, n);
  } else if (spec.dtype === "float16") {
    data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = halfToFloat(view.getUint16(2 * i, true));
  } else if (spec.dtype === "float32") {
    data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = view.getFloat32(4 * i, true);
  } else {
    data = new Int32Array(n);
    for (let i = 0; i < n; i++) data[i] = view.getInt32(4 * i, true);
  }
  return { dtype: spec.dtype, shape: spec.shape, data };
}

/** Decode every array of a reply into a name -> array map. */
export function decodeAll(specs: ArraySpec[], buffers: (DataView | ArrayBuffer | ArrayBufferView)[]): Map<string, NdArray> {
  if (specs.length !== buffers.length) throw new Error(`${specs.length} array specs but ${buffers.length} buffers`);
  return new Map(specs.map((s, i) => [s.name, decode(s, buffers[i])]));
}
