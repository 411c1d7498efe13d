// An in-memory stand-in for the anywidget model (the kernel side is tested in Python):
// get/set/on/off/save_changes/send with the same synchronous change events.
import type { AnyModel } from "@anywidget/types";

type Handler = (...args: any[]) => void;

export class FakeModel<T extends Record<string, any>> {
  state: T;
  saved = 0;
  sent: any[] = [];
  onSend: ((content: any) => void) | null = null;
  private handlers = new Map<string, Set<Handler>>();

  constructor(state: T) {
    this.state = { ...state };
  }

  get<K extends keyof T>(key: K): T[K] {
    return this.state[key];
  }

  set<K extends keyof T>(key: K, value: T[K]): void {
    this.state[key] = value;
    this.emit(`change:${String(key)}`);
  }

  on(event: string, fn: Handler): void {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event)?.add(fn);
  }

  off(event?: string | null, fn?: Handler | null): void {
    if (!event) {
      this.handlers.clear();
      return;
    }
    if (fn) this.handlers.get(event)?.delete(fn);
    else this.handlers.delete(event);
  }

  emit(event: string, ...args: any[]): void {
    for (const fn of [...(this.handlers.get(event) ?? [])]) fn(...args);
  }

  listenerCount(): number {
    let n = 0;
    for (const s of this.handlers.values()) n += s.size;
    return n;
  }

  save_changes(): void {
    this.saved++;
  }

  send(content: any): void {
    this.sent.push(content);
    this.onSend?.(content);
  }

  /** Python's `self.set(...)` arriving in the browser. */
  fromKernel(changes: Partial<T>): void {
    for (const [k, v] of Object.entries(changes)) this.set(k as keyof T, v as T[keyof T]);
  }

  asModel<S extends Record<string, any>>(): AnyModel<S> {
    return this as unknown as AnyModel<S>;
  }
}

export const tick = () => new Promise((r) => setTimeout(r, 0));
