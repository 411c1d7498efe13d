// A fixed-row-height virtual list: only the rows in view (plus a margin) exist in the DOM,
// so a tree of thousands of modules scrolls as smoothly as one of ten.

export class VirtualList {
  readonly viewport: HTMLElement;
  private readonly spacer: HTMLElement;
  private readonly pool: HTMLElement[] = [];
  private count = 0;
  private frame = 0;
  private readonly onScroll = () => {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  };

  constructor(
    viewport: HTMLElement,
    readonly rowHeight: number,
    private readonly renderRow: (index: number, el: HTMLElement) => void,
    private readonly fallbackHeight = 400,
    private readonly overscan = 8,
  ) {
    this.viewport = viewport;
    this.spacer = document.createElement("div");
    this.spacer.className = "nbfeat-vlist-spacer";
    this.spacer.style.position = "relative";
    viewport.append(this.spacer);
    viewport.addEventListener("scroll", this.onScroll);
  }

  setCount(n: number): void {
    this.count = n;
    this.spacer.style.height = `${n * this.rowHeight}px`;
    this.draw();
  }

  /** Indices of the rows that are rendered now. */
  range(): [number, number] {
    const height = this.viewport.clientHeight || this.fallbackHeight;
    const top = this.viewport.scrollTop;
    const first = Math.max(0, Math.floor(top / this.rowHeight) - this.overscan);
    const last = Math.min(this.count, Math.ceil((top + height) / this.rowHeight) + this.overscan);
    return [first, Math.max(first, last)];
  }

  draw(): void {
    const [first, last] = this.range();
    const need = last - first;
    while (this.pool.length < need) {
      const el = document.createElement("div");
      el.style.position = "absolute";
      el.style.left = "0";
      el.style.right = "0";
      el.style.height = `${this.rowHeight}px`;
      this.pool.push(el);
      this.spacer.append(el);
    }
    this.pool.forEach((el, k) => {
      if (k < need) {
        const i = first + k;
        el.style.top = `${i * this.rowHeight}px`;
        el.hidden = false;
        this.renderRow(i, el);
      } else {
        el.hidden = true;
        el.removeAttribute("data-path");
      }
    });
  }

  /** Scroll so row `i` is in view (no-op when it already is). */
  scrollToRow(i: number): void {
    const height = this.viewport.clientHeight || this.fallbackHeight;
    const top = i * this.rowHeight;
    if (top < this.viewport.scrollTop) this.viewport.scrollTop = top;
    else if (top + this.rowHeight > this.viewport.scrollTop + height) this.viewport.scrollTop = top + this.rowHeight - height;
    this.draw();
  }

  dispose(): void {
    this.viewport.removeEventListener("scroll", this.onScroll);
    if (this.frame) cancelAnimationFrame(this.frame);
  }
}
