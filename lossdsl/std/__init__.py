"""The standard library: common losses written in the language, shipped as `.loss` files.

    import lossdsl.std
    lossdsl.std.names()                           # ['binary_cross_entropy', 'cosine', ...]
    f = lossdsl.std.compile("huber", backend="torch", params={"delta": 0.5})
    lossdsl.std.path("huber")                     # the file, to read or copy

Each file says which library function it matches; tests/test_std.py checks value and
gradient against that function, and docs/std.md lists them. The specs are per sample,
`[B, ...] -> [B]` (cross-entropies take `[B, C]` logits and `int[B]` labels); for other
ranks, copy one.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files(__name__).iterdir() if p.name.endswith(".loss"))


def path(name: str) -> Path:
    candidate = resources.files(__name__).joinpath(f"{name}.loss")
    if not candidate.is_file():
        import difflib

        from lossdsl.diagnostics import LossError

        close = difflib.get_close_matches(name, names(), n=1)
        raise LossError.plain(
            f"no standard loss called {name!r}",
            path="lossdsl.std",
            code="E001",
            help=f"did you mean {close[0]!r}?" if close else f"there are: {', '.join(names())}",
        )
    return Path(str(candidate))


def source(name: str) -> str:
    return path(name).read_text(encoding="utf-8")


def compile(name: str, backend: str = "torch", *, context=None, params=None):
    from lossdsl import compile as _compile

    return _compile(path(name), backend=backend, context=context, params=params)
