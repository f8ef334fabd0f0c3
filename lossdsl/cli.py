"""The `lossdsl` command.

    lossdsl check PATH... [--format text|json|github] [--quiet] [--strict]
    lossdsl emit SPEC --backend B        the generated code
    lossdsl emit SPEC -b B --standalone  a module that needs only the framework (no lossdsl)
    lossdsl ir SPEC                      the checked IR, with dtypes and shapes
    lossdsl run SPEC --backend B (--data FILE.npz | --random) [--dim B=32]

Exit status: 0 all good, 1 an error was found, 2 the command was used wrongly.
`check` imports no ML framework (and not NumPy).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .diagnostics import Diagnostic, LossError, summary_line


class _UsageError(Exception):
    pass


def _loss_files(paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*.loss") if q.is_file())
            if not found:
                raise _UsageError(f"no .loss files under {raw}")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise _UsageError(f"no such file or directory: {raw}")
    return files


def spec_argument(raw: str) -> Path | str:
    """The SPEC of `ir`, `emit` and `run`, read as `check` reads its paths: an existing file is
    read whatever its name; text that looks like a path (one line ending in `.loss`, or with a
    path separator and no spaces) but names no file is an error; anything else is spec text."""
    p = Path(raw)
    if "\n" not in raw and p.is_file():
        return p
    one_line = "\n" not in raw.strip()
    if one_line and (raw.strip().endswith(".loss") or (os.sep in raw and " " not in raw.strip())):
        raise _UsageError(f"no such file: {raw}")
    return raw


def _use_color(stream) -> bool:
    return hasattr(stream, "isatty") and stream.isatty() and "NO_COLOR" not in os.environ


# Each command imports what it needs when it runs: `check` stays free of the code generators
# and of every framework.


def cmd_check(args: argparse.Namespace) -> int:
    from .frontend import findings_for

    files = _loss_files(args.paths)
    per_file: list[tuple[Path, list[Diagnostic]]] = [(f, findings_for(f)) for f in files]
    findings = [d for _, ds in per_file for d in ds]
    errors = [d for d in findings if d.severity == "error"]
    warnings = [d for d in findings if d.severity == "warning"]
    failed = bool(errors) or (args.strict and bool(warnings))
    shown = findings if not args.quiet else errors + (warnings if args.strict else [])
    out = sys.stdout
    if args.format == "json":
        json.dump(
            {
                "files": len(files),
                "errors": len(errors),
                "warnings": len(warnings),
                "findings": [d.as_json() for d in shown],
            },
            out,
            indent=2,
        )
        out.write("\n")
    elif args.format == "github":
        for d in shown:
            out.write(d.as_github() + "\n")
        if not args.quiet:
            out.write(summary_line(len(errors), len(warnings), len(files)) + "\n")
    else:
        color = _use_color(out)
        for d in shown:
            out.write(d.render(color=color) + "\n\n")
        if not args.quiet:
            out.write(summary_line(len(errors), len(warnings), len(files)) + "\n")
    return 1 if failed else 0


def cmd_ir(args: argparse.Namespace) -> int:
    from .pipeline import check, parse
    from .printing import format_ir

    checked = check(parse(_as_source(spec_argument(args.spec)), allow_quick=False))
    sys.stdout.write(format_ir(checked, lowered=args.lowered or bool(args.sharded), sharded=args.sharded) + "\n")
    return 0


def cmd_emit(args: argparse.Namespace) -> int:
    from .api import generate_source

    spec = _as_source(spec_argument(args.spec))
    sys.stdout.write(generate_source(spec, backend=args.backend, standalone=args.standalone))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .runner import run_spec

    args.spec = _as_source(spec_argument(args.spec))
    return run_spec(args)


def _as_source(spec: Path | str):
    from .loading import load_source
    from .source import Source

    return load_source(spec) if isinstance(spec, Path) else Source(spec, "<command line>")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lossdsl", description="Check, inspect and run .loss specs.")
    p.add_argument("--version", action="version", version=f"lossdsl {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("check", help="check .loss files and folders without running any backend")
    c.add_argument("paths", nargs="+", metavar="PATH", help="files, or folders to search for *.loss")
    c.add_argument(
        "--format",
        choices=("text", "json", "github"),
        default="text",
        help="text (default), json, or GitHub Actions annotations",
    )
    c.add_argument("-q", "--quiet", action="store_true", help="print errors only, without the summary line")
    c.add_argument("--strict", action="store_true", help="fail on warnings too")
    c.set_defaults(func=cmd_check)

    i = sub.add_parser("ir", help="print the checked IR with dtypes and symbolic shapes")
    i.add_argument("spec")
    i.add_argument("--lowered", action="store_true", help="after the lowering passes (stable forms, guards, casts)")
    i.add_argument("--sharded", metavar="SYM", help="with SYM split across replicas: which reductions become global")
    i.set_defaults(func=cmd_ir)

    e = sub.add_parser("emit", help="print the code generated for a backend")
    e.add_argument("spec")
    e.add_argument("--backend", "-b", default="torch", help="torch, tensorflow (tf), jax or numpy")
    e.add_argument(
        "--standalone",
        action="store_true",
        help="a module that imports only the framework, with the argument checks: "
        "`loss(*args, reduction=, sample_weight=, **params)`, and `bind(**context)` for a spec with context",
    )
    e.set_defaults(func=cmd_emit)

    r = sub.add_parser("run", help="evaluate a spec and print the value and gradient norms")
    r.add_argument("spec")
    r.add_argument("--backend", "-b", default="numpy")
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="a .npz with one array per argument (record fields as `x.field`)")
    src.add_argument("--random", action="store_true", help="draw inputs that fit the declared shapes")
    r.add_argument("--dim", action="append", default=[], metavar="SYM=N", help="size of a dimension for --random")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a param's value: a number or a list such as [1.0, 0.5]",
    )
    r.add_argument("--reduction", default="mean")
    r.set_defaults(func=cmd_run)
    return p


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args)
    except _UsageError as err:
        sys.stderr.write(f"lossdsl {args.command}: error: {err}\n")
        return 2
    except LossError as err:
        sys.stderr.write(str(err) + "\n")
        return 1
    except BrokenPipeError:
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
