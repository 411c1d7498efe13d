// The model tree view: search box, virtualised rows, selection synced with Python.
import type { AnyModel } from "@anywidget/types";
import { button, h, listen } from "./dom";
import { formatBytes, formatParams, formatShape, TreeModel, type TreeRow } from "./tree_model";
import { VirtualList } from "./virtual_list";

export interface TreeState {
  _kind: "tree";
  title: string;
  rows: TreeRow[];
  selected: string[];
  focused: string;
  height: number;
  note: string;
}

export const ROW_HEIGHT = 24;

/** Render the tree widget into `el`; returns the cleanup that removes every handler. */
export function renderTree(model: AnyModel<TreeState>, el: HTMLElement): () => void {
  let tree = new TreeModel(model.get("rows") ?? []);
  tree.setSelected(model.get("selected") ?? []);
  tree.focused = model.get("focused") ?? "";

  const search = h("input", {
    className: "nbfeat-tree-search",
    attrs: { type: "search", placeholder: "Search, or a pattern like blocks.*.attn (Enter selects)", "aria-label": "Search modules" },
  });
  const toolbar = h(
    "div",
    { className: "nbfeat-toolbar" },
    search,
    button("Select", "select-matches", "Select every module the search matches (Enter)"),
  );
  const actions = h(
    "span",
    { className: "nbfeat-actions" },
    button("Expand all", "expand", "Expand every module"),
    button("Collapse", "collapse", "Collapse to the top-level modules"),
    button("Clear", "clear", "Clear the selection"),
  );
  const header = h(
    "div",
    { className: "nbfeat-tree-row nbfeat-tree-header" },
    h("span", { text: "Module" }),
    h("span", { text: "Type" }),
    h("span", { text: "Output", title: "Output shape for a batch of 1 (from a dry run on the meta device)" }),
    h("span", { text: "Params" }),
    h("span", { text: "Size", title: "Bytes per sample of the output, as nbfeat stores it (from the dry run; text: 8 tokens)" }),
  );
  const viewport = h("div", { className: "nbfeat-tree-viewport", attrs: { tabindex: "0", role: "tree" } });
  const status = h("span", { className: "nbfeat-status nbfeat-tree-status" });
  const footer = h("div", { className: "nbfeat-footer" }, status, actions);
  const note = h("div", { className: "nbfeat-status nbfeat-tree-note" });
  const heading = h("div", { className: "nbfeat-tree-title" });
  const setTitle = () => {
    heading.textContent = model.get("title") ?? "";
  };
  setTitle();
  const root = h("div", { className: "nbfeat-tree" }, heading, toolbar, header, viewport, footer, note);
  const setNote = () => {
    note.textContent = model.get("note") ?? "";
  };
  setNote();
  el.classList.add("nbfeat-widget");
  el.append(root);

  const setHeight = () => {
    viewport.style.height = `${model.get("height") || 360}px`;
  };
  setHeight();

  const list = new VirtualList(
    viewport,
    ROW_HEIGHT,
    (i, rowEl) => drawRow(tree, tree.rows[tree.visible()[i]], rowEl),
    model.get("height") || 360,
  );

  const refresh = () => {
    list.setCount(tree.visible().length);
    const n = tree.selected.length;
    const parts = [`${tree.rows.length - 1} modules`, `${n} selected`];
    if (tree.searching) parts.push(`${tree.matchCount} match${tree.matchCount === 1 ? "" : "es"}`);
    status.textContent = parts.join(" · ");
  };

  let pushing = false;
  const push = () => {
    pushing = true;
    model.set("selected", tree.selected);
    model.set("focused", tree.focused);
    model.save_changes();
    pushing = false;
    refresh();
  };

  const scrollTo = (path: string) => {
    const i = tree.visiblePaths().indexOf(path);
    if (i >= 0) list.scrollToRow(i);
  };

  const offs: (() => void)[] = [];
  offs.push(
    listen(viewport, "mousedown", (ev) => {
      if (ev.shiftKey) ev.preventDefault(); // no text selection on shift-click ranges
    }),
    listen(viewport, "click", (ev) => {
      const target = ev.target as HTMLElement;
      const rowEl = target.closest<HTMLElement>(".nbfeat-tree-row");
      const path = rowEl?.dataset.path;
      if (path === undefined) return;
      if (target.closest(".nbfeat-tree-caret")) {
        tree.toggle(path);
        refresh();
        return;
      }
      if (path === "") return; // the root is the whole model, not a layer
      tree.click(path, { shift: ev.shiftKey, ctrl: ev.ctrlKey || ev.metaKey });
      push();
    }),
    listen(viewport, "dblclick", (ev) => {
      const path = (ev.target as HTMLElement).closest<HTMLElement>(".nbfeat-tree-row")?.dataset.path;
      if (path !== undefined && !(ev.target as HTMLElement).closest(".nbfeat-tree-caret")) {
        tree.toggle(path);
        refresh();
      }
    }),
    listen(viewport, "keydown", (ev) => {
      const vis = tree.visiblePaths();
      const at = Math.max(0, vis.indexOf(tree.focused));
      if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
        const next = vis[Math.min(vis.length - 1, Math.max(0, at + (ev.key === "ArrowDown" ? 1 : -1)))];
        if (next) {
          tree.click(next, { shift: ev.shiftKey });
          push();
          scrollTo(next);
        }
        ev.preventDefault();
      } else if (ev.key === "ArrowRight" || ev.key === "ArrowLeft") {
        if (tree.hasChildren(tree.focused) && tree.isCollapsed(tree.focused) === (ev.key === "ArrowRight")) {
          tree.toggle(tree.focused);
          refresh();
        }
        ev.preventDefault();
      }
    }),
    listen(search, "input", () => {
      tree.setQuery(search.value);
      viewport.scrollTop = 0;
      refresh();
    }),
    listen(search, "keydown", (ev) => {
      if (ev.key === "Enter") {
        tree.selectMatches();
        push();
      } else if (ev.key === "Escape") {
        search.value = "";
        tree.setQuery("");
        refresh();
      }
    }),
    listen(root, "click", (ev) => {
      const action = (ev.target as HTMLElement).closest<HTMLElement>("[data-action]")?.dataset.action;
      if (action === "select-matches") {
        tree.selectMatches();
        push();
      } else if (action === "expand") {
        tree.expandAll();
        refresh();
      } else if (action === "collapse") {
        tree.collapseAll();
        refresh();
      } else if (action === "clear") {
        tree.setSelected([]);
        push();
      }
    }),
  );

  const onSelected = () => {
    if (pushing) return;
    tree.setSelected(model.get("selected") ?? []);
    refresh();
    const first = tree.selected[0];
    if (first !== undefined) scrollTo(first);
  };
  const onRows = () => {
    tree = new TreeModel(model.get("rows") ?? []);
    tree.setSelected(model.get("selected") ?? []);
    tree.setQuery(search.value);
    refresh();
  };
  const onHeight = () => {
    setHeight();
    list.draw();
  };
  model.on("change:selected", onSelected);
  model.on("change:rows", onRows);
  model.on("change:height", onHeight);
  model.on("change:note", setNote);
  model.on("change:title", setTitle);
  refresh();

  return () => {
    for (const off of offs) off();
    model.off("change:selected", onSelected);
    model.off("change:rows", onRows);
    model.off("change:height", onHeight);
    model.off("change:note", setNote);
    model.off("change:title", setTitle);
    list.dispose();
    root.remove();
  };
}

/** Fill a pooled row element for `row` (rows are reused as the list scrolls). */
export function drawRow(tree: TreeModel, row: TreeRow, el: HTMLElement): void {
  const kids = tree.hasChildren(row.path);
  const classes = ["nbfeat-tree-row"];
  if (tree.isSelected(row.path)) classes.push("nbfeat-selected");
  if (tree.isMatch(row.path)) classes.push("nbfeat-match");
  if (row.path === tree.focused) classes.push("nbfeat-focused");
  if (row.path === "") classes.push("nbfeat-tree-root");
  el.className = classes.join(" ");
  el.dataset.path = row.path;
  el.setAttribute("role", "treeitem");
  el.setAttribute("aria-selected", String(tree.isSelected(row.path)));
  if (kids) el.setAttribute("aria-expanded", String(!tree.isCollapsed(row.path)));
  else el.removeAttribute("aria-expanded");

  const caret = h("span", { className: "nbfeat-tree-caret", text: kids ? (tree.isCollapsed(row.path) ? "▸" : "▾") : "" });
  const name = h("span", { className: "nbfeat-tree-name", title: row.path || row.name }, caret, h("span", { text: row.name }));
  name.style.paddingLeft = `${row.depth * 14}px`;
  if (row.role) name.append(h("span", { className: `nbfeat-chip nbfeat-role-${row.role}`, text: row.role }));
  if (row.calls !== null && row.calls > 1)
    name.append(h("span", { className: "nbfeat-chip", text: `×${row.calls}`, title: `called ${row.calls} times per forward` }));
  const calls = row.calls === 0 ? " (not called in forward)" : "";
  el.replaceChildren(
    name,
    h("span", { className: "nbfeat-tree-type", text: row.type, title: row.type }),
    h("span", {
      className: "nbfeat-tree-shape",
      text: formatShape(row.shape),
      title: row.shape ? `[${row.shape.join(", ")}]` : `shape unknown${calls}`,
    }),
    h("span", { className: "nbfeat-tree-params", text: formatParams(row.params), title: `${row.params.toLocaleString()} parameters` }),
    h("span", {
      className: "nbfeat-tree-bytes",
      text: row.path ? formatBytes(row.bytes) : "",
      title: row.bytes ? `${row.bytes.toLocaleString()} bytes per sample` : "size unknown",
    }),
  );
}
