// The state of the model tree, free of the DOM: rows, collapsed nodes, the search filter,
// and selection (click, ctrl-click, shift-click ranges, glob patterns).
import { globMatch, isGlob } from "./glob";

/** One module, as `nbfeat.models.tree.module_tree` describes it. */
export interface TreeRow {
  path: string;
  name: string;
  type: string;
  depth: number;
  parent: string | null;
  params: number;
  shape: number[] | null;
  calls: number | null;
  role: string | null;
  bytes?: number | null;
}

export interface ClickModifiers {
  shift?: boolean;
  ctrl?: boolean;
}

export class TreeModel {
  readonly rows: TreeRow[];
  private readonly index = new Map<string, number>();
  private readonly hasKids: boolean[];
  private readonly collapsed = new Set<string>();
  private query = "";
  private shown: Set<number> | null = null; // while searching: matches and their ancestors
  private matchSet: Set<number> | null = null;
  private selectedSet = new Set<string>();
  private anchor: string | null = null;
  private cache: number[] | null = null;
  focused = "";

  /** Rows deeper than `expandDepth` start collapsed (1: the top-level modules show). */
  constructor(rows: TreeRow[], expandDepth = 1) {
    this.rows = rows;
    rows.forEach((r, i) => {
      this.index.set(r.path, i);
    });
    this.hasKids = rows.map(() => false);
    for (const r of rows) {
      if (r.parent !== null && this.index.has(r.parent)) {
        this.hasKids[this.index.get(r.parent) as number] = true;
      }
    }
    rows.forEach((r, i) => {
      if (this.hasKids[i] && r.depth >= expandDepth) this.collapsed.add(r.path);
    });
  }

  has(path: string): boolean {
    return this.index.has(path);
  }

  row(path: string): TreeRow | undefined {
    const i = this.index.get(path);
    return i === undefined ? undefined : this.rows[i];
  }

  hasChildren(path: string): boolean {
    const i = this.index.get(path);
    return i !== undefined && this.hasKids[i];
  }

  isCollapsed(path: string): boolean {
    // while searching every ancestor of a match is open
    return this.shown === null && this.collapsed.has(path);
  }

  isSelected(path: string): boolean {
    return this.selectedSet.has(path);
  }

  isMatch(path: string): boolean {
    const i = this.index.get(path);
    return this.matchSet !== null && i !== undefined && this.matchSet.has(i);
  }

  get selected(): string[] {
    return this.rows.filter((r) => this.selectedSet.has(r.path)).map((r) => r.path);
  }

  get searching(): boolean {
    return this.shown !== null;
  }

  get matchCount(): number {
    return this.matchSet?.size ?? 0;
  }

  /** Row indices on screen, in tree order (collapsed subtrees and filtered rows left out). */
  visible(): number[] {
    if (this.cache) return this.cache;
    const out: number[] = [];
    if (this.shown) {
      for (let i = 0; i < this.rows.length; i++) if (this.shown.has(i)) out.push(i);
    } else {
      let hideBelow = Number.POSITIVE_INFINITY; // depth of the collapsed row we are inside
      for (let i = 0; i < this.rows.length; i++) {
        const r = this.rows[i];
        if (r.depth > hideBelow) continue;
        hideBelow = Number.POSITIVE_INFINITY;
        out.push(i);
        if (this.collapsed.has(r.path)) hideBelow = r.depth;
      }
    }
    this.cache = out;
    return out;
  }

  visiblePaths(): string[] {
    return this.visible().map((i) => this.rows[i].path);
  }

  toggle(path: string): void {
    if (!this.hasChildren(path)) return;
    if (this.collapsed.has(path)) this.collapsed.delete(path);
    else this.collapsed.add(path);
    this.cache = null;
  }

  expandAll(): void {
    this.collapsed.clear();
    this.cache = null;
  }

  collapseAll(): void {
    this.rows.forEach((r, i) => {
      if (this.hasKids[i] && r.depth >= 1) this.collapsed.add(r.path);
    });
    this.cache = null;
  }

  /** Open every ancestor of `path` so its row is visible. */
  reveal(path: string): void {
    let p = this.row(path)?.parent ?? null;
    while (p !== null) {
      this.collapsed.delete(p);
      p = this.row(p)?.parent ?? null;
    }
    this.cache = null;
  }

  /** Filter rows: a glob (`blocks.*.attn`) matches whole paths, other text is a
   * case-insensitive substring of path or type. Empty text clears the filter. */
  setQuery(text: string): void {
    this.query = text.trim();
    this.cache = null;
    if (!this.query) {
      this.shown = null;
      this.matchSet = null;
      return;
    }
    const hits = this.findMatches(this.query);
    const shown = new Set<number>();
    for (const i of hits) {
      let j: number | undefined = i;
      while (j !== undefined && !shown.has(j)) {
        shown.add(j);
        const parent: string | null = this.rows[j].parent;
        j = parent === null ? undefined : this.index.get(parent);
      }
    }
    this.matchSet = new Set(hits);
    this.shown = shown;
  }

  private findMatches(text: string): number[] {
    const out: number[] = [];
    if (isGlob(text)) {
      this.rows.forEach((r, i) => {
        if (r.path && globMatch(text, r.path)) out.push(i);
      });
    } else {
      const low = text.toLowerCase();
      this.rows.forEach((r, i) => {
        if (r.path && (r.path.toLowerCase().includes(low) || r.type.toLowerCase().includes(low))) out.push(i);
      });
    }
    return out;
  }

  /** Plain click: only this row; ctrl/cmd: toggle it; shift: the visible range from the
   * last clicked row (added to the selection with ctrl). */
  click(path: string, mods: ClickModifiers = {}): void {
    if (!this.has(path)) return;
    if (mods.shift && this.anchor !== null && this.has(this.anchor)) {
      const vis = this.visiblePaths();
      let a = vis.indexOf(this.anchor);
      let b = vis.indexOf(path);
      if (a < 0) a = b;
      if (a > b) [a, b] = [b, a];
      const range = vis.slice(a, b + 1).filter((p) => p !== "");
      if (!mods.ctrl) this.selectedSet.clear();
      for (const p of range) this.selectedSet.add(p);
    } else if (mods.ctrl) {
      if (this.selectedSet.has(path)) this.selectedSet.delete(path);
      else this.selectedSet.add(path);
      this.anchor = path;
    } else {
      this.selectedSet = new Set([path]);
      this.anchor = path;
    }
    this.focused = path;
  }

  /** Select every module whose path matches the glob (fnmatch rules); returns them. */
  selectPattern(pattern: string): string[] {
    const hits = this.rows.filter((r) => r.path && globMatch(pattern, r.path)).map((r) => r.path);
    this.selectedSet = new Set(hits);
    for (const p of hits) this.reveal(p);
    if (hits.length) this.focused = hits[hits.length - 1];
    return hits;
  }

  /** Select what the search box matches (Enter in the search box). */
  selectMatches(): string[] {
    if (!this.query) return [];
    if (isGlob(this.query)) return this.selectPattern(this.query);
    const hits = this.findMatches(this.query).map((i) => this.rows[i].path);
    this.selectedSet = new Set(hits);
    if (hits.length) this.focused = hits[hits.length - 1];
    return hits;
  }

  /** Selection set from outside (Python); unknown paths are dropped. */
  setSelected(paths: string[]): void {
    this.selectedSet = new Set(paths.filter((p) => this.has(p)));
    for (const p of this.selectedSet) this.reveal(p);
  }
}

/** Bytes as memory counts them (powers of 1024): 1536 -> "1.5 KB". */
export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v.toFixed(0)} B` : `${v.toFixed(1)} ${units[i]}`;
}

export function formatParams(n: number): string {
  if (n <= 0) return "";
  const units: [number, string][] = [
    [1e9, "B"],
    [1e6, "M"],
    [1e3, "K"],
  ];
  for (const [size, unit] of units) {
    if (n >= size) {
      const v = n / size;
      return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)}${unit}`;
    }
  }
  return String(n);
}

export function formatShape(shape: number[] | null): string {
  return shape ? shape.join("×") : "";
}
