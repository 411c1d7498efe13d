// Bundle the widget front end into ../nbfeat/static/ (one self-contained ES module + CSS).
// anywidget loads `_esm` from a single file, so no code splitting.
import { copyFile, mkdir } from "node:fs/promises";
import * as esbuild from "esbuild";

const outdir = new URL("../nbfeat/static/", import.meta.url).pathname;
const watch = process.argv.includes("--watch");

const options = {
  entryPoints: { widgets: "src/index.ts" },
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: !watch,
  sourcemap: watch ? "inline" : false,
  outdir,
  logLevel: "info",
};

await mkdir(outdir, { recursive: true });
await copyFile("src/widgets.css", `${outdir}widgets.css`);
if (watch) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
} else {
  await esbuild.build(options);
}
