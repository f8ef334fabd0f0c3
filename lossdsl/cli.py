"""The `lossdsl` command.

    lossdsl check PATH... [--format text|json|github|sarif] [--quiet] [--strict]
    lossdsl fmt PATH... [--check|--diff]   rewrite in the canonical layout (`-`: stdin to stdout)
    lossdsl explain CODE                   the long explanation of an error code
    lossdsl emit SPEC --backend B        the generated code
    lossdsl emit SPEC -b B --standalone  a module that needs only the framework (no lossdsl)
    lossdsl ir SPEC                      the checked IR, with dtypes and shapes
    lossdsl run SPEC --backend B (--data FILE.npz | --random) [--dim B=32]
    lossdsl lsp                          the language server, on stdin and stdout

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
    elif args.format == "sarif":
        from .sarif import sarif_log

        json.dump(sarif_log(shown, tool_version=_version()), out, indent=2)
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


def cmd_fmt(args: argparse.Namespace) -> int:
    from .formatting import format_source
    from .loading import load_source

    if args.paths == ["-"]:
        text = sys.stdin.read()
        formatted = format_source(text, "<stdin>")
        if args.diff:
            sys.stdout.writelines(_diff(text, formatted, "<stdin>"))
        elif args.check:
            sys.stdout.write("would reformat <stdin>\n" if formatted != text else "")
        else:
            sys.stdout.write(formatted)
        return 1 if (args.check or args.diff) and formatted != text else 0
    if "-" in args.paths:
        raise _UsageError("`-` (standard input) cannot be mixed with paths")
    failed = False
    changed = 0
    files = _loss_files(args.paths)
    for path in files:
        try:
            text = load_source(path).text
            formatted = format_source(text, str(path))
        except LossError as err:
            # Reported, and the file is left as it is.
            sys.stderr.write(str(err) + "\n\n")
            failed = True
            continue
        if formatted == text:
            continue
        changed += 1
        if args.diff:
            sys.stdout.writelines(_diff(text, formatted, str(path)))
        elif args.check:
            sys.stdout.write(f"would reformat {path}\n")
        else:
            path.write_text(formatted, encoding="utf-8")
            sys.stdout.write(f"reformatted {path}\n")
    if (args.check or args.diff) and changed:
        failed = True
    verb = "would be reformatted" if args.check or args.diff else "reformatted"
    sys.stderr.write(f"{changed} of {len(files)} file{'' if len(files) == 1 else 's'} {verb}\n")
    return 1 if failed else 0


def _diff(text: str, formatted: str, name: str) -> list[str]:
    import difflib

    lines = difflib.unified_diff(text.splitlines(True), formatted.splitlines(True), name, f"{name} (formatted)")
    return [line if line.endswith("\n") else line + "\n" for line in lines]


def cmd_explain(args: argparse.Namespace) -> int:
    from .explanations import EXPLANATIONS, explain, render_text

    if args.code is None:
        for e in EXPLANATIONS.values():
            sys.stdout.write(f"{e.code}  {e.title}\n")
        return 0
    found = explain(args.code)
    if found is None:
        import difflib

        close = difflib.get_close_matches(args.code.strip().upper(), list(EXPLANATIONS), n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else "; `lossdsl explain` lists them"
        raise _UsageError(f"no such code: {args.code}{hint}")
    sys.stdout.write(render_text(found) + "\n")
    if found.language == "loss":
        # What the checker says about the wrong example today, so the two cannot drift apart.
        from .frontend import findings_for
        from .source import Source

        shown = [d for d in findings_for(Source(found.wrong, "example.loss")) if d.code == found.code]
        if shown:
            sys.stdout.write("\n`lossdsl check` on the first spec:\n\n")
            sys.stdout.write("\n".join("    " + line for d in shown for line in d.render().split("\n")) + "\n")
    return 0


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


def cmd_lsp(args: argparse.Namespace) -> int:
    try:
        from .lsp.server import serve
    except ImportError as err:
        raise _UsageError(
            f"the language server needs pygls ({err}); install it with `pip install 'lossdsl[lsp]'`"
        ) from None
    serve()
    return 0


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
        choices=("text", "json", "github", "sarif"),
        default="text",
        help="text (default), json, GitHub Actions annotations, or SARIF 2.1.0 (for code scanning)",
    )
    c.add_argument("-q", "--quiet", action="store_true", help="print errors only, without the summary line")
    c.add_argument("--strict", action="store_true", help="fail on warnings too")
    c.set_defaults(func=cmd_check)

    f = sub.add_parser("fmt", help="rewrite .loss files in the canonical layout")
    f.add_argument("paths", nargs="+", metavar="PATH", help="files, folders to search for *.loss, or - for stdin")
    f.add_argument("--check", action="store_true", help="change nothing; list the files that would change")
    f.add_argument("--diff", action="store_true", help="change nothing; print what would change as a unified diff")
    f.set_defaults(func=cmd_fmt)

    x = sub.add_parser("explain", help="the long explanation of an error code, with examples")
    x.add_argument("code", nargs="?", metavar="CODE", help="such as E401; without one, every code is listed")
    x.set_defaults(func=cmd_explain)

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

    s = sub.add_parser("lsp", help="run the language server (LSP over stdin and stdout) for editors")
    s.set_defaults(func=cmd_lsp)
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
