import { afterEach, describe, expect, it } from "vitest";
import { insertCellBelow, pasteInto } from "../src/notebook_cell";

afterEach(() => {
  document.body.replaceChildren();
});

/** A notebook as JupyterLab draws one: a panel, its toolbar's insert-below button, cells. */
function notebook(): { panel: HTMLElement; widgetHost: HTMLElement; pasted: string[] } {
  const pasted: string[] = [];
  const panel = document.createElement("div");
  panel.className = "jp-NotebookPanel";
  const cells = document.createElement("div");
  const makeCell = (active: boolean) => {
    const cell = document.createElement("div");
    cell.className = `jp-Cell${active ? " jp-mod-active" : ""}`;
    const content = document.createElement("div");
    content.className = "cm-content";
    content.addEventListener("paste", (ev) => {
      const text = (ev as ClipboardEvent).clipboardData?.getData("text/plain") ?? "";
      pasted.push(text);
      content.textContent = text;
    });
    // jsdom has no DataTransfer: the CodeMirror-view route writes the text there
    (content as any).cmView = {
      view: {
        state: { doc: { length: 0 } },
        dispatch: (t: any) => {
          pasted.push(t.changes.insert);
          content.textContent = t.changes.insert;
        },
      },
    };
    cell.append(content);
    return cell;
  };
  const first = makeCell(true);
  const host = document.createElement("div");
  first.append(host);
  cells.append(first);
  const insert = document.createElement("button");
  insert.dataset.command = "notebook:insert-cell-below";
  insert.addEventListener("mousedown", () => {
    for (const c of cells.querySelectorAll(".jp-mod-active")) c.classList.remove("jp-mod-active");
    cells.append(makeCell(true));
  });
  panel.append(insert, cells);
  document.body.append(panel);
  return { panel, widgetHost: host, pasted };
}

describe("to cell", () => {
  it("inserts one cell below and pastes the code into it", async () => {
    const nb = notebook();
    expect(await insertCellBelow(nb.widgetHost, "x = 1")).toBe(true);
    const cells = nb.panel.querySelectorAll(".jp-Cell");
    expect(cells.length).toBe(2);
    expect(cells[1].querySelector(".cm-content")?.textContent).toBe("x = 1");
    expect(nb.pasted).toEqual(["x = 1"]);
  });

  it("says false where there is no notebook (the caller copies)", async () => {
    const lone = document.createElement("div");
    document.body.append(lone);
    expect(await insertCellBelow(lone, "x = 1", 50)).toBe(false);
  });

  it("falls back to CodeMirror's view when a paste is ignored", () => {
    const content = document.createElement("div");
    let doc = "";
    (content as any).cmView = {
      view: {
        state: { doc: { length: 0 } },
        dispatch: (t: any) => {
          doc = t.changes.insert;
        },
      },
    };
    document.body.append(content);
    expect(pasteInto(content, "y = 2")).toBe(true);
    expect(doc).toBe("y = 2");
  });
});
