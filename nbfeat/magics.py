"""The `%nbfeat` line magic and `%%nbfeat` cell magic (`%load_ext nbfeat`).

    %nbfeat models dinov2
    %nbfeat tree timm:resnet50
    %nbfeat extract timm:resnet50 --layers layer3 layer4 --pool mean --inputs images/ -o feats

    %%nbfeat -o feats
    model: timm:resnet50
    inputs: images/
    layers:
      layer3: {pool: [avg2d, 8]}
      layer4: {pool: mean}

Loading the extension imports no torch: models load on the first command that needs one.
Settings: `%config NbfeatMagics.progress = False` (and `device`, `short_errors`).
"""

from __future__ import annotations

import argparse
import keyword
import os
import re
import sys
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.utils.process import arg_split
from traitlets import Bool, Unicode
from traitlets.config import Configurable

from nbfeat.cli import describe, is_user_error, user_message
from nbfeat.config import (
    EXTRACT_FLAGS,
    KEYS,
    ROLES,
    flag_hint,
    flags_to_raw,
    load_config,
    one_line,
    parse_model_kwargs,
    parse_yaml,
)
from nbfeat.errors import NbfeatError, closest

INTRO = """Extract features from pretrained backbones into labelled xarray.

Subcommands (`%nbfeat help SUBCOMMAND` for one, `%nbfeat SUBCOMMAND -h` too):

  %nbfeat models [PATTERN]                      table of model ids (all sources, aliases)
  %nbfeat tree MODEL                            module tree widget: shapes, params, pick layers
  %nbfeat extract MODEL --inputs X --layers ... run an extraction; -o NAME binds the result
  %nbfeat browse NAME                           activation browser for extracted features
  %nbfeat explore MODEL --inputs X              tree + activation browser, linked
  %nbfeat help [SUBCOMMAND]                     this help

  %%nbfeat [-o NAME] [--set KEY=VALUE ...]      cell body: a YAML extraction config

MODEL is a model id (timm:..., torchvision:..., hf:<hub id or dir>, an alias such as dinov2)
or the name of a variable holding a loaded backbone. X is a path, folder or glob, or the name
of a variable (PIL images, a tensor, a list of texts). Tab completes model ids and layer names.
"""

CELL_HELP = """::

  %%nbfeat [-o NAME] [--set KEY=VALUE ...] [--code] [extract flags]

The cell body is a YAML config, the same file `nbfeat extract config.yaml` runs:

  model: timm:resnet50          # or models: [id, id] / models: {id: {layers: ...}}
  inputs: images/               # a path, glob, list, or the name of a variable
  layers:
    layer3: {pool: [avg2d, 8]}  # per-layer pooling
    layer4: {pool: mean}
  out: feats.zarr               # optional: stream into a zarr store

Keys: """ + ", ".join(KEYS) + """.

Flags on the %%nbfeat line (--device cuda, --random, --set batch_size=8) override the body.
-o NAME binds the result in the notebook; --code prints the equivalent Python instead.
"""


def _with_extract_flags(func: Callable[..., Any]) -> Callable[..., Any]:
    for flags, kwargs in reversed(EXTRACT_FLAGS):
        func = argument(*flags, **kwargs)(func)
    return func


_NAME = argument("-o", "--name", metavar="NAME", help="bind the result to this variable (and print one line)")
_CODE = argument("--code", action="store_true", help="print the equivalent Python call instead of running it")


@magics_class
class NbfeatMagics(Magics, Configurable):
    """`%nbfeat` / `%%nbfeat`: models, trees and extractions from a notebook."""

    progress = Bool(True, help="Show a progress bar while extracting.").tag(config=True)
    device = Unicode(None, allow_none=True, help="Device for extract/explore when the command names none (e.g. 'cuda:1').").tag(config=True)
    short_errors = Bool(True, help="Show a user mistake as one line; False shows the full traceback.").tag(config=True)

    # ---- entry point ---------------------------------------------------------------------

    @line_cell_magic
    def nbfeat(self, line: str, cell: str | None = None) -> Any:
        try:
            if cell is not None:
                return self._cell(line, cell)
            command, _, rest = line.strip().partition(" ")
            if not command:
                print(self.nbfeat.__doc__)
                return None
            handler = self._handlers().get(command)
            if handler is None:
                hint = closest(command, self._handlers(), n=1)
                raise UsageError(
                    f"Unknown %nbfeat subcommand '{command}'."
                    + (f" Did you mean '{hint[0]}'?" if hint else "")
                    + f" Subcommands: {', '.join(self._handlers())}."
                )
            return handler(rest)
        except UsageError as e:
            raise UsageError(one_line(str(e))) from None
        except Exception as e:
            if not self.short_errors or not is_user_error(e):
                raise
            raise UsageError(user_message(e)) from None

    def _handlers(self) -> dict[str, Callable[[str], Any]]:
        return {"models": self._models, "tree": self._tree, "extract": self._extract, "browse": self._browse, "explore": self._explore, "help": self._help}

    def _parse(self, func: Any, rest: str) -> Any:
        """Parse a subcommand's arguments; -h prints its help; errors name the subcommand."""
        name = func.parser.prog
        try:
            # posix rules, as a shell: quotes group words and are removed ("my images/"),
            # where IPython's default splitter keeps them as part of the path
            argv = arg_split(rest, posix=True)
        except ValueError as e:  # unbalanced quotes
            raise UsageError(f"%{name}: {e}") from None
        if "-h" in argv or "--help" in argv:
            print(func.__doc__)
            return None
        try:
            return func.parser.parse_args(argv)
        except UsageError as e:
            hint = flag_hint(str(e), func.parser._option_string_actions)
            raise UsageError(f"%{name}: {e}.{hint} (see %nbfeat help {name.split()[-1]})".replace("..", ".")) from None

    # ---- subcommands ---------------------------------------------------------------------

    @magic_arguments(name="nbfeat models")
    @argument("pattern", nargs="?", help="substring or glob of the id or family (e.g. dinov2, *vit_small*)")
    def _models(self, rest: str) -> Any:
        """Table of model ids from every source plus the named families (a pandas DataFrame)."""
        args = self._parse(self._models, rest)
        if args is None:
            return None
        import nbfeat

        table = nbfeat.list_models(args.pattern)
        if len(table) == 0:
            print(f"No model id matches '{args.pattern}'. Try a shorter pattern; Hugging Face models load as hf:<hub id or dir>.")
            return None
        return table

    @magic_arguments(name="nbfeat tree")
    @argument("model", help="model id, or a variable holding a loaded backbone")
    @argument("--pretrained", action="store_true", help="load the published weights (the tree needs none)")
    def _tree(self, rest: str) -> Any:
        """The module tree widget: types, output shapes, params; click modules to pick layers."""
        args = self._parse(self._tree, rest)
        if args is None:
            return None
        import nbfeat

        model = self._user_backbone(args.model)
        if model is None:
            model = nbfeat.load(args.model, pretrained=True) if args.pretrained else args.model
        return nbfeat.tree(model)

    @magic_arguments(name="nbfeat extract")
    @argument("model", nargs="+", help="model id(s), or a variable holding a loaded backbone")
    @_with_extract_flags
    @_NAME
    @_CODE
    def _extract(self, rest: str) -> Any:
        """Run an extraction; with -o NAME the result is bound to NAME in the notebook."""
        args = self._parse(self._extract, rest)
        if args is None:
            return None
        if args.inputs is None:
            raise UsageError("%nbfeat extract needs --inputs: a path, folder or glob, or the name of a variable.")
        raw = flags_to_raw(args, models=args.model)
        cfg = load_config(raw, overrides=args.set)
        return self._run(cfg, args.name, args.code)

    @magic_arguments(name="nbfeat browse")
    @argument("name", help="a variable holding extracted features, or the path of a zarr store")
    def _browse(self, rest: str) -> Any:
        """The activation browser for extracted features (a Dataset, DataTree or store)."""
        args = self._parse(self._browse, rest)
        if args is None:
            return None
        import nbfeat

        if args.name in self.shell.user_ns:
            return nbfeat.browse(self.shell.user_ns[args.name])
        if os.path.exists(args.name):
            return nbfeat.browse(nbfeat.open(args.name))
        raise UsageError(f"%nbfeat browse: no variable or store named '{args.name}'." + _did_you_mean(args.name, self._user_names()))

    @magic_arguments(name="nbfeat explore")
    @argument("model", help="model id, or a variable holding a loaded backbone")
    @argument("-i", "--inputs", required=True, help="path, folder or glob, or the name of a variable")
    @argument("--random", action="store_true", help="random weights instead of the published ones (the same as --no-pretrained)")
    @argument("--pretrained", action=argparse.BooleanOptionalAction, default=None, help="published weights (the default); --no-pretrained: random weights")
    @argument("--weights", metavar="PATH", help="a local checkpoint file or Hugging Face directory")
    @argument("--model-kwargs", nargs="+", metavar="KEY=VALUE", dest="model_kwargs", help="model constructor arguments: img_size=224, or a JSON mapping")
    @argument("--device", help="cpu, cuda, ... (default: cuda when available)")
    def _explore(self, rest: str) -> Any:
        """Model tree and activation browser, linked: click a module, see its activations."""
        args = self._parse(self._explore, rest)
        if args is None:
            return None
        import nbfeat

        bb = self._user_backbone(args.model)
        if bb is None:
            if args.random and args.pretrained:
                raise UsageError("%nbfeat explore: --pretrained and --random contradict each other: pick one.")
            pretrained = not args.random and args.pretrained is not False
            model_kwargs = parse_model_kwargs(args.model_kwargs) if args.model_kwargs else None
            bb = nbfeat.load(args.model, pretrained=pretrained, weights=args.weights, model_kwargs=model_kwargs, device=args.device or self.device)
        inputs, _ = self._inputs(args.inputs)
        return nbfeat.explore(bb, inputs)

    @magic_arguments(name="nbfeat help")
    @argument("subcommand", nargs="?", help="one of models, tree, extract, browse, explore, %%nbfeat")
    def _help(self, rest: str) -> None:
        """Help for every subcommand, or for one."""
        args = self._parse(self._help, rest)
        if args is None:
            return
        sub = (args.subcommand or "").lstrip("%")
        if not sub:
            print(self.nbfeat.__doc__)
        elif sub == "nbfeat":
            print(CELL_HELP)
        elif sub in self._handlers():
            print(self._handlers()[sub].__doc__)
        else:
            raise UsageError(f"No help for '{sub}'. Subcommands: {', '.join(self._handlers())}, %%nbfeat.")

    # ---- the cell magic ------------------------------------------------------------------

    @magic_arguments(name="%nbfeat")
    @argument("extract", nargs="?", choices=["extract"], help=r"optional: %%nbfeat extract reads the same")
    @_with_extract_flags
    @_NAME
    @_CODE
    def _cell_args(self, rest: str) -> None:
        """The %%nbfeat line: flags override the YAML body."""

    def _cell(self, line: str, cell: str) -> Any:
        args = self._parse(self._cell_args, line)
        if args is None:
            return None
        raw = parse_yaml(cell)
        if raw is None:
            raise UsageError(r"%%nbfeat: the cell is empty; write a YAML config (see %nbfeat help %%nbfeat).")
        if not isinstance(raw, dict):
            raise UsageError(f"%%nbfeat: the cell must hold a YAML mapping of 'key: value' lines, got a {type(raw).__name__}.")
        cfg = load_config(raw, overrides=args.set, extra=flags_to_raw(args))
        return self._run(cfg, args.name, args.code)

    # ---- running ---------------------------------------------------------------------------

    def _run(self, cfg: Any, name: str | None, show_code: bool) -> Any:
        if name is not None and (not name.isidentifier() or keyword.iskeyword(name)):
            raise UsageError(f"-o {name}: not a valid Python variable name.")
        cfg.inputs, cfg.inputs_expr = self._inputs(cfg.inputs)
        if show_code:
            print(cfg.to_code())
            return None
        import nbfeat

        kwargs = cfg.to_kwargs()
        kwargs.setdefault("progress", self.progress)
        if self.device is not None:
            kwargs.setdefault("device", self.device)
        # a model named by a variable holding a loaded backbone runs as that backbone
        models = kwargs["models"]
        if isinstance(models, list):
            kwargs["models"] = [self._user_backbone(m) or m for m in models]
        else:
            kwargs["models"] = self._user_backbone(models) or models
        result = nbfeat.extract(**kwargs)
        if name is None:
            return result
        self.shell.user_ns[name] = result
        print(f"{name} = {describe(result)}")
        return None

    def _inputs(self, value: Any) -> tuple[Any, str | None]:
        """(inputs, the variable name they came from) for a path or a user variable's name."""
        if not isinstance(value, str):
            return value, None
        name = value.strip()
        if name.isidentifier() and name in self.shell.user_ns:
            return self.shell.user_ns[name], name
        if name.isidentifier() and not os.path.exists(name):
            raise UsageError(f"--inputs '{name}': no variable or path of that name." + _did_you_mean(name, self._user_names()))
        return value, None

    def _user_backbone(self, name: Any) -> Any:
        value = self.shell.user_ns.get(name) if isinstance(name, str) and name.isidentifier() else None
        return value if _is_backbone(value) else None

    def _user_names(self) -> list[str]:
        hidden = self.shell.user_ns_hidden
        return [k for k in self.shell.user_ns if not k.startswith("_") and k not in hidden]


def _is_backbone(value: Any) -> bool:
    mod = sys.modules.get("nbfeat.models.backbone")
    return mod is not None and isinstance(value, mod.Backbone)


def _did_you_mean(name: str, candidates: list[str]) -> str:
    hits = closest(name, candidates, n=3)
    return f" Did you mean: {', '.join(hits)}?" if hits else ""


def _compose_help() -> None:
    subs = [NbfeatMagics._models, NbfeatMagics._tree, NbfeatMagics._extract, NbfeatMagics._browse, NbfeatMagics._explore, NbfeatMagics._help]
    NbfeatMagics.nbfeat.__doc__ = INTRO + "\n" + "\n".join(f.__doc__ or "" for f in subs) + "\n" + CELL_HELP


_compose_help()


# ---- tab completion ----------------------------------------------------------------------

_SUBCOMMANDS = ("models", "tree", "extract", "browse", "explore", "help")
_TAKES_MODEL = ("tree", "extract", "explore")
_MAGIC_LINE = re.compile(r"^\s*%?nbfeat\s+(?P<args>.*)$")
_DEVICES = ("cpu", "cuda", "cuda:0", "cuda:1", "mps")
_POOLS = ("mean", "mean_all", "max", "cls", "last", "flatten", "avg2d:", "max2d:")


class Completions:
    """Candidates for a `%nbfeat` line: subcommands, options, model ids, layer names.

    Model ids come from `nbfeat.list_models()` and layer names from a structure-only load of
    the model (meta device, no weights); both are cached for the session.
    """

    def __init__(self, user_ns: dict[str, Any] | None = None):
        self.user_ns = user_ns if user_ns is not None else {}
        self._model_ids: list[str] | None = None
        self._layers: dict[str, list[str]] = {}

    def model_ids(self) -> list[str]:
        if self._model_ids is None:
            import nbfeat

            ids = list(nbfeat.list_models()["id"])
            # timm lists pretrained tags (timm:resnet50.a1_in1k); offer the bare name too
            bases = {i.partition(".")[0]: None for i in ids if i.startswith("timm:") and "." in i}
            self._model_ids = sorted(dict.fromkeys([*ids, *bases]), key=lambda i: (":" in i, i))
        return self._model_ids

    def layers(self, model: str) -> list[str]:
        value = self.user_ns.get(model) if model.isidentifier() else None
        if _is_backbone(value):
            return list(value.layers())
        if model not in self._layers:
            from nbfeat.cli import load_structure

            try:
                self._layers[model] = list(load_structure(model).layers())
            except NbfeatError:  # an unknown model: nothing to offer (and no retry per key)
                self._layers[model] = []
        return self._layers[model]

    def __call__(self, text_until_cursor: str) -> tuple[str, list[str]] | None:
        """(fragment to replace, candidates), or None when the line is not ours."""
        m = _MAGIC_LINE.match(text_until_cursor)
        if not m:
            return None
        words = m.group("args").split()
        current = "" if text_until_cursor.endswith((" ", "\t")) else (words.pop() if words else "")
        if not words:
            return current, [s for s in _SUBCOMMANDS if s.startswith(current)]
        sub = words[0]
        if current.startswith("--") or current == "-":
            return current, [o for o in _options(sub) if o.startswith(current)]
        option = next((w for w in reversed(words[1:]) if w.startswith("-") and not re.fullmatch(r"-\d+", w)), None)
        positionals = [w for w in words[1:] if not w.startswith("-")]
        if option in ("-l", "--layers") or (option in ("-p", "--pool") and "=" not in current and positionals):
            model = _first_positional(words[1:])
            if model is None:
                return None
            head, _, frag = current.rpartition(",")
            names = [n for n in self.layers(model) if n.startswith(frag)]
            if option in ("-p", "--pool"):
                names = [n + "=" for n in names] + [p for p in _POOLS if p.startswith(frag)]
            return current, [f"{head},{n}" if head else n for n in names]
        if option in ("-p", "--pool"):
            layer, _, frag = current.rpartition("=")
            return current, [f"{layer}={p}" for p in _POOLS if p.startswith(frag)]
        if option == "--nodes":
            return current, [r for r in ROLES if r.startswith(current)]
        if option == "--device":
            return current, [d for d in _DEVICES if d.startswith(current)]
        if option in ("-i", "--inputs", "--weights", "--out", "-o", "--name", "--set"):
            return None  # paths and variable names: IPython's own completers do these
        if sub in _TAKES_MODEL and (sub == "extract" or not positionals):
            return current, self._match_models(current)
        return None

    def _match_models(self, frag: str) -> list[str]:
        ids = self.model_ids()
        hits = [i for i in ids if i.startswith(frag)]
        if ":" not in frag:  # `resnet5` also offers `timm:resnet50`, `torchvision:resnet50`
            hits += [i for i in ids if ":" in i and i.partition(":")[2].startswith(frag) and i not in hits]
        return hits


def _first_positional(words: list[str]) -> str | None:
    # the model comes right after the subcommand, before any option
    return words[0] if words and not words[0].startswith("-") else None


def _options(sub: str) -> list[str]:
    func = {"models": NbfeatMagics._models, "tree": NbfeatMagics._tree, "extract": NbfeatMagics._extract, "browse": NbfeatMagics._browse, "explore": NbfeatMagics._explore}.get(sub)
    if func is None:
        return []
    return sorted(o for o in func.parser._option_string_actions if o.startswith("--"))


def _make_matcher(completions: Completions) -> Callable[..., Any]:
    from IPython.core.completer import SimpleCompletion, context_matcher

    @context_matcher()
    def nbfeat_matcher(context: Any) -> dict[str, Any]:
        try:
            found = completions(context.text_until_cursor)
        except Exception:  # completion must never raise into the user's typing
            found = None
        if found is None:
            return {"completions": [], "suppress": False}
        fragment, candidates = found
        limit = context.limit or len(candidates)
        return {
            "completions": [SimpleCompletion(text=c, type="nbfeat") for c in candidates[:limit]],
            "matched_fragment": fragment,
            "suppress": bool(candidates),
            "ordered": True,
        }

    return nbfeat_matcher


# ---- registration ------------------------------------------------------------------------


def load_ipython_extension(ip: Any) -> None:
    """Register the magics, their `%config` settings and the tab completer (no torch import)."""
    for old in [c for c in ip.configurables if isinstance(c, NbfeatMagics)]:
        ip.configurables.remove(old)
    magics = NbfeatMagics(shell=ip, parent=ip)
    ip.register_magics(magics)
    ip.configurables.append(magics)
    completer = getattr(ip, "Completer", None)
    if completer is not None:
        completer.custom_matchers[:] = [m for m in completer.custom_matchers if getattr(m, "__name__", "") != "nbfeat_matcher"]
        completer.custom_matchers.append(_make_matcher(Completions(ip.user_ns)))


def unload_ipython_extension(ip: Any) -> None:
    completer = getattr(ip, "Completer", None)
    if completer is not None:
        completer.custom_matchers[:] = [m for m in completer.custom_matchers if getattr(m, "__name__", "") != "nbfeat_matcher"]


__all__ = ["NbfeatMagics", "load_ipython_extension"]
