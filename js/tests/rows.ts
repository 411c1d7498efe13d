import type { TreeRow } from "../src/tree_model";

/** Rows as module_tree gives them, from a list of paths (preorder). */
export function rowsFrom(paths: string[], type = "Module"): TreeRow[] {
  return ["", ...paths].map((path) => ({
    path,
    name: path ? (path.split(".").pop() as string) : "Model",
    type: path.endsWith("attn") ? "Attention" : type,
    depth: path ? path.split(".").length : 0,
    parent: path ? path.split(".").slice(0, -1).join(".") : null,
    params: 1000,
    shape: [1, 8, 64],
    calls: 1,
    role: null,
  }));
}

/** A ViT-like model: blocks.{i}.{norm1,attn,attn.qkv,attn.proj,mlp,mlp.fc1}. */
export function vitRows(depth: number): TreeRow[] {
  const paths = ["patch_embed", "blocks"];
  for (let i = 0; i < depth; i++) {
    paths.push(
      `blocks.${i}`,
      `blocks.${i}.norm1`,
      `blocks.${i}.attn`,
      `blocks.${i}.attn.qkv`,
      `blocks.${i}.attn.proj`,
      `blocks.${i}.mlp`,
      `blocks.${i}.mlp.fc1`,
    );
  }
  paths.push("norm", "head");
  return rowsFrom(paths);
}
