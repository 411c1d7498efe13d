// The one ES module behind every nbfeat widget; `_kind` picks the view.
import type { AnyModel, RenderProps } from "@anywidget/types";
import { type BrowserState, renderBrowser } from "./browser_view";
import { type ComparisonState, renderComparison } from "./comparison_view";
import { renderSplitter, type SplitterState } from "./splitter_view";
import { renderTree, type TreeState } from "./tree_view";

type State = { _kind: string };

function render({ model, el }: RenderProps<State>): () => void {
  const kind = model.get("_kind");
  if (kind === "tree") return renderTree(model as unknown as AnyModel<TreeState>, el);
  if (kind === "browser") return renderBrowser(model as unknown as AnyModel<BrowserState>, el);
  if (kind === "comparison") return renderComparison(model as unknown as AnyModel<ComparisonState>, el);
  if (kind === "splitter") return renderSplitter(model as unknown as AnyModel<SplitterState>, el);
  el.textContent = `nbfeat: unknown widget kind ${JSON.stringify(kind)}`;
  return () => {
    el.textContent = "";
  };
}

export default { render };
