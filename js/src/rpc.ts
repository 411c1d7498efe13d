// Request/response over the widget's custom messages (the quak pattern): the view asks for
// what it is about to show, with an id; the kernel answers with JSON plus binary buffers.
import type { AnyModel } from "@anywidget/types";
import { type ArraySpec, decodeAll, type NdArray } from "./codec";

export interface Reply {
  meta: Record<string, unknown>;
  arrays: Map<string, NdArray>;
}

interface Pending {
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

export class Rpc {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly onMsg = (
    msg: { type?: string; id?: number; ok?: boolean; error?: string; arrays?: ArraySpec[] },
    buffers: DataView[],
  ) => {
    if (msg?.type !== "nbfeat:response" || msg.id === undefined) return;
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    clearTimeout(p.timer);
    if (!msg.ok) {
      p.reject(new Error(msg.error || "the kernel could not answer"));
      return;
    }
    try {
      p.resolve({ meta: msg as Record<string, unknown>, arrays: decodeAll(msg.arrays ?? [], buffers ?? []) });
    } catch (e) {
      p.reject(e as Error);
    }
  };

  constructor(
    private readonly model: AnyModel,
    private readonly timeoutMs = 300_000,
  ) {
    model.on("msg:custom", this.onMsg);
  }

  request(kind: string, payload: Record<string, unknown> = {}): Promise<Reply> {
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no answer from the kernel after ${this.timeoutMs / 1000} s (is it busy or dead?)`));
      }, this.timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.model.send({ type: "nbfeat:request", id, kind, ...payload });
    });
  }

  dispose(): void {
    this.model.off("msg:custom", this.onMsg);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error("view closed"));
    }
    this.pending.clear();
  }
}
