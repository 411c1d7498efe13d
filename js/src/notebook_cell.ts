// "To cell": put the view's code in a new code cell below the widget's own cell, in JupyterLab 4
// and Notebook 7, through the notebook's own toolbar command (what a click on "+" does) and a
// paste into the new cell's editor (what Ctrl+V does). Where there is no such notebook (VS Code,
// Colab, a static page) it returns false and the caller copies the code instead.

const INSERT_BELOW = '[data-command="notebook:insert-cell-below"]';

/** The new cell's editor, once the notebook has drawn it (undefined after `timeoutMs`). */
async function newEditor(panel: HTMLElement, old: HTMLElement, timeoutMs: number): Promise<HTMLElement | undefined> {
  const t0 = Date.now();
  for (;;) {
    const active = panel.querySelector<HTMLElement>(".jp-Cell.jp-mod-active");
    const content = active && active !== old ? active.querySelector<HTMLElement>(".cm-content") : null;
    if (content) return content;
    if (Date.now() - t0 > timeoutMs) return undefined;
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Write `text` into a CodeMirror 6 editor as a paste does (the notebook model follows). */
export function pasteInto(content: HTMLElement, text: string): boolean {
  content.focus();
  try {
    const data = new DataTransfer();
    data.setData("text/plain", text);
    content.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true }));
  } catch {
    // no DataTransfer constructor (old engines): try CodeMirror's view below
  }
  if ((content.textContent ?? "").trim()) return true;
  // CodeMirror keeps its view on the content element (what EditorView.findFromDOM reads)
  const view = (content as unknown as { cmView?: { view?: { state: { doc: { length: number } }; dispatch: (t: unknown) => void } } }).cmView
    ?.view;
  if (!view) return false;
  view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
  return true;
}

/** Insert `code` as a new cell below the cell that holds `el`; false where no notebook is found. */
export async function insertCellBelow(el: HTMLElement, code: string, timeoutMs = 3000): Promise<boolean> {
  const cell = el.closest<HTMLElement>(".jp-Cell");
  const panel = el.closest<HTMLElement>(".jp-NotebookPanel");
  const insert = panel?.querySelector<HTMLElement>(INSERT_BELOW);
  if (!cell || !panel || !insert) return false;
  // insert-below acts on the active cell: make it the widget's (a click there does the same)
  const prompt = cell.querySelector<HTMLElement>(".jp-InputPrompt, .jp-Cell-inputCollapser") ?? cell;
  prompt.dispatchEvent(new MouseEvent("mousedown", { bubbles: true, cancelable: true, button: 0 }));
  prompt.dispatchEvent(new MouseEvent("mouseup", { bubbles: true, cancelable: true, button: 0 }));
  // JupyterLab's toolbar buttons act on mousedown (a click as well when so configured): try
  // mousedown first, and click only when no cell came, so one press never inserts two cells
  const target = insert.matches("jp-button, button") ? insert : (insert.querySelector<HTMLElement>("jp-button, button") ?? insert);
  target.dispatchEvent(new MouseEvent("mousedown", { bubbles: true, cancelable: true, button: 0 }));
  let editor = await newEditor(panel, cell, Math.min(800, timeoutMs));
  if (!editor) {
    target.click();
    editor = await newEditor(panel, cell, timeoutMs);
  }
  return editor ? pasteInto(editor, code) : false;
}
