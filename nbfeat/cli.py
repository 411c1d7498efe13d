"""The `nbfeat` command: the same words and the same YAML as the `%nbfeat` magic.

    nbfeat extract config.yaml [--set key=value ...]
    nbfeat extract timm:resnet50 --inputs images/ --layers layer4 --pool mean --out feats.zarr
    nbfeat models dinov2
    nbfeat tree torchvision:resnet18 --depth 2

Exit status (docs/cli.md): 0 done, 2 a usage or user error such as bad input (one line on
stderr), 3 the store is being written by another process, 4 nothing can be written there (a
full disk or quota, a read-only file system), 1 an unexpected error (a traceback: please
report it), 130 interrupted, 141 the reader of stdout went away (`nbfeat models | head`).
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from nbfeat._version import __version__
from nbfeat.config import EXTRACT_FLAGS, KEYS, flag_hint, flags_to_raw, load_config, one_line
from nbfeat.errors import NbfeatError

EXAMPLE_CONFIG = """\
model: timm:resnet50
inputs: images/
layers:
  layer3: {pool: [avg2d, 8]}
  layer4: {pool: mean}
out: feats.zarr
"""


# A path that is missing, not a folder, or not writable is the user's to fix, not a bug.
PATH_ERRORS: tuple[type[OSError], ...] = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, FileExistsError)
# and so is a full disk or quota (OSError with these errno values)
DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
READ_ONLY = (errno.EROFS,)
# exit statuses (documented in docs/cli.md)
EXIT_OK, EXIT_BUG, EXIT_USER, EXIT_BUSY, EXIT_NO_SPACE, EXIT_INTERRUPTED, EXIT_PIPE = 0, 1, 2, 3, 4, 130, 141


def is_user_error(error: BaseException) -> bool:
    """True for mistakes the user fixes (shown as one line); False for bugs (a traceback)."""
    if isinstance(error, (NbfeatError, *PATH_ERRORS)):
        return True
    return isinstance(error, OSError) and error.errno in (*DISK_FULL, *READ_ONLY)


def exit_status(error: BaseException) -> int:
    """The exit status for a user error (see the module docstring)."""
    from nbfeat.store.lock import StoreBusyError

    if isinstance(error, StoreBusyError):
        return EXIT_BUSY
    if isinstance(error, OSError) and not isinstance(error, NbfeatError) and error.errno in (*DISK_FULL, *READ_ONLY):
        return EXIT_NO_SPACE
    return EXIT_USER


def user_message(error: BaseException) -> str:
    """The one line shown for a user error (line breaks in quoted names escaped)."""
    if isinstance(error, OSError) and not isinstance(error, NbfeatError) and error.errno in DISK_FULL:
        where = f" (writing {error.filename})" if error.filename else ""
        return one_line(
            f"{error.strerror or 'No space left on device'}{where}. Free some space and run the same "
            "command again: a store keeps its finished chunks and resumes."
        )
    if isinstance(error, OSError) and not isinstance(error, NbfeatError) and error.errno in READ_ONLY:
        where = f" ({error.filename})" if error.filename else ""
        return one_line(f"Read-only file system{where}: write to a folder you can write to (out: / --out).")
    if isinstance(error, OSError) and not isinstance(error, NbfeatError) and error.filename:
        return one_line(f"{error.strerror}: {error.filename}")
    return one_line(str(error))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + message
        # unknown flags suggest the closest (a subcommand's extras are reported by the top parser)
        subs = [sp for a in self._actions if isinstance(a, argparse._SubParsersAction) for sp in a.choices.values()]
        hint = flag_hint(message, [o for p in (self, *subs) for o in p._option_string_actions])
        self.exit(2, f"{self.prog}: {message}{'.' + hint if hint else ''} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The `nbfeat` argument parser (subcommands extract, models, tree, help)."""
    parser = _Parser(
        prog="nbfeat",
        description="Features from pretrained timm / torchvision / Hugging Face backbones, as labelled xarray.",
        epilog="The same commands run in a notebook after %load_ext nbfeat: %nbfeat models, %nbfeat tree, %%nbfeat <yaml>.",
    )
    parser.add_argument("--version", action="version", version=f"nbfeat {__version__}")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback for user errors too")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    ex = subs.add_parser(
        "extract",
        help="run an extraction from a YAML config or from flags",
        description="Run an extraction into a zarr store, from a YAML config (the %%nbfeat cell body) or from flags.",
        epilog=f"Config keys: {', '.join(KEYS)}.\n\nExample config:\n\n{EXAMPLE_CONFIG}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ex.add_argument("target", nargs="+", metavar="CONFIG_OR_MODEL", help="a .yaml config file, or model id(s)")
    for flags, kwargs in EXTRACT_FLAGS:
        ex.add_argument(*flags, **kwargs)
    ex.add_argument("--code", action="store_true", help="print the equivalent Python call instead of running it")

    mo = subs.add_parser("models", help="list model ids", description="List model ids from every source plus the named families.")
    mo.add_argument("pattern", nargs="?", help="substring or glob of the id or family (e.g. dinov2, '*vit_small*')")

    tr = subs.add_parser("tree", help="print a model's module tree", description="Print a model's module tree: paths (what --layers takes), types, output shapes and parameter counts. No weights are loaded.")
    tr.add_argument("model", help="model id (timm:..., torchvision:..., hf:<hub id or dir>, or an alias)")
    tr.add_argument("--depth", type=int, metavar="N", help="show modules down to this depth (1: top level)")

    he = subs.add_parser("help", help="help for a command", description="Help for a command.")
    he.add_argument("topic", nargs="?", choices=["extract", "models", "tree"], help="a command")
    parser.set_defaults(_subparsers={"extract": ex, "models": mo, "tree": tr})
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `nbfeat` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    show = warnings.formatwarning
    warnings.formatwarning = _one_line_warning
    try:
        status = _COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return status
    except BrokenPipeError:
        return _reader_gone()
    except Exception as e:
        if args.traceback or not is_user_error(e):
            raise
        _say(f"nbfeat {args.command}: {user_message(e)}")
        return exit_status(e)
    except KeyboardInterrupt:
        _say("nbfeat: interrupted. Rerun the same command to resume a run with out=.")
        return EXIT_INTERRUPTED
    finally:
        warnings.formatwarning = show


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr)
    except (BrokenPipeError, OSError):  # stderr closed too: the status says it
        pass


def _reader_gone() -> int:
    """stdout's reader went away (`nbfeat models | head`): stop quietly, as `ls | head` does."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second BrokenPipeError when Python flushes at exit
    except (OSError, ValueError):
        pass
    return EXIT_PIPE


def _one_line_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> str:
    # a warning on the command line is one line about the run, not a source line of nbfeat
    return f"nbfeat: {category.__name__}: {one_line(str(message))}\n"


def _extract(args: argparse.Namespace) -> int:
    target = args.target
    is_config = len(target) == 1 and (target[0].endswith((".yaml", ".yml")) or os.path.isfile(target[0]))
    flags = flags_to_raw(args, models=None if is_config else target)
    if is_config:
        cfg = load_config(target[0], overrides=args.set, extra=flags)
    else:
        if "inputs" not in flags:
            raise NbfeatError("extract needs --inputs (a folder, file or glob), or a YAML config file.")
        cfg = load_config(flags, overrides=args.set)
    if args.code:
        print(cfg.to_code())
        return 0
    cache = cfg.options.get("cache")
    if not cfg.out and not cache:
        raise NbfeatError("extract needs somewhere to write: add 'out: feats.zarr' to the config, or pass --out feats.zarr (or --cache).")
    import nbfeat

    result = nbfeat.extract(**cfg.to_kwargs())
    where = f"Wrote {cfg.out}" if cfg.out else f"In the cache ({nbfeat.cache.directory(cache)})"
    print(f"{where}: {describe(result)}")
    return 0


def _models(args: argparse.Namespace) -> int:
    import nbfeat

    table = nbfeat.list_models(args.pattern)
    if len(table) == 0:
        raise NbfeatError(f"No model id matches '{args.pattern}'. Try a shorter pattern; Hugging Face models load as hf:<hub id or dir>.")
    cols = [c for c in ("id", "family", "modality", "extra", "note") if c in table.columns and (table[c] != "").any()]
    widths = {c: max(len(c), *(len(str(v)) for v in table[c])) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols).rstrip())
    for row in table[cols].itertuples(index=False):
        print("  ".join(str(v).ljust(widths[c]) for c, v in zip(cols, row)).rstrip())
    return 0


def _tree(args: argparse.Namespace) -> int:
    bb = load_structure(args.model)
    print(format_tree(bb, depth=args.depth))
    return 0


def _help(args: argparse.Namespace) -> int:
    parser = build_parser()
    if args.topic:
        parser.parse_args([args.topic, "--help"])  # prints and exits 0
    parser.print_help()
    return 0


_COMMANDS = {"extract": _extract, "models": _models, "tree": _tree, "help": _help}


# ---- shared with the magics ----------------------------------------------------------------


def load_structure(model: str) -> Any:
    """A Backbone for looking at structure only: random weights, built on the meta device
    (no memory, no download) where the model allows it, else on the CPU.

    >>> load_structure("torchvision:resnet18").layers()[:2]     # doctest: +SKIP
    ['conv1', 'bn1']
    """
    import torch

    import nbfeat

    try:
        with torch.device("meta"):
            return nbfeat.load(model, pretrained=False, device="meta")
    except NbfeatError:
        raise
    except Exception:  # some constructors touch real data while building: build for real
        return nbfeat.load(model, pretrained=False, device="cpu")


def format_tree(bb: Any, depth: int | None = None) -> str:
    """An indented text tree: module path (what `layers=` takes), type, output shape
    (batch dim left out), node role, parameters.

    >>> print(format_tree(load_structure("torchvision:resnet18"), depth=1))   # doctest: +SKIP
    torchvision:resnet18  ResNet  11.7M params
      conv1    Conv2d             64x112x112           9.4K
      ...
      layer4   Sequential         512x7x7              8.4M
    """
    from nbfeat.models.tree import module_tree

    rows = module_tree(bb)
    root, rows = rows[0], [r for r in rows[1:] if depth is None or r["depth"] <= depth]
    head = f"{bb.id}  {root['type']}  {_count(root['params'])} params"
    if not rows:
        return head
    cells = []
    for r in rows:
        shape = "x".join(map(str, r["shape"][1:])) if r["shape"] else ""
        if r["calls"] and r["calls"] > 1:
            shape += f" ({r['calls']} calls)"
        cells.append(("  " * r["depth"] + r["path"], r["type"], shape, r["role"] or "", _count(r["params"]) if r["params"] else ""))
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    shown = [i for i in range(4) if widths[i]]  # no role column for a model without roles in view
    lines = ["  ".join([*(c[i].ljust(widths[i]) for i in shown), c[4]]) for c in cells]
    lines = [line.rstrip() for line in lines]
    if bb.blocks:
        roles = ", ".join(bb.nodes)
        lines.append(f"{len(bb.blocks)} repeated blocks ({bb.blocks[0]} ... {bb.blocks[-1]}): layers=-1 is the last; node roles: {roles}")
    return "\n".join([head, *lines])


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def describe(result: Any) -> str:
    """One line about an extraction result: type, samples, each variable's non-sample dims.

    >>> describe(ds)    # doctest: +SKIP
    'Dataset, 6 samples: layer4 (channel 512)'
    """
    import xarray as xr

    kind = type(result).__name__
    items: list[tuple[str, Any]] = []
    if isinstance(result, xr.DataTree):
        for node in result.subtree:
            prefix = node.path.strip("/")
            for name, var in node.dataset.data_vars.items():
                # one variable per node, named like the node: show the path once
                label = str(name) if not prefix else prefix if prefix.rsplit("/", 1)[-1] == name else f"{prefix}/{name}"
                items.append((label, var))
    elif isinstance(result, xr.Dataset):
        items = [(str(k), v) for k, v in result.data_vars.items()]
    else:
        return kind
    n = next((v.sizes["sample"] for _, v in items if "sample" in v.sizes), None)
    parts = []
    for name, var in items[:8]:
        dims = ", ".join(f"{d} {s}" for d, s in var.sizes.items() if d != "sample")
        parts.append(f"{name} ({dims})" if dims else name)
    if len(items) > 8:
        parts.append(f"... {len(items) - 8} more")
    samples = f", {n} samples" if n is not None else ""
    return f"{kind}{samples}: {', '.join(parts)}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
