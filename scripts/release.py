"""Sets the version for a release: `__version__` in lossdsl/__init__.py (the one source that
pyproject.toml reads) and the heading of CHANGELOG.md's "Unreleased" section, which a fresh,
empty "Unreleased" section then precedes.

    python scripts/release.py 0.2.0 [--date 2026-12-24]
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSION_LINE = re.compile(r'^__version__ = "([^"]+)"$', re.M)


def _parts(version: str) -> tuple[int, int, int]:
    m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version)
    if m is None:
        raise ValueError(f"a version is MAJOR.MINOR.PATCH, found {version!r}")
    major, minor, patch = (int(g) for g in m.groups())
    return major, minor, patch


def release(version: str, date: str, root: Path = ROOT) -> None:
    init = root / "lossdsl" / "__init__.py"
    changelog = root / "CHANGELOG.md"
    code, notes = init.read_text(), changelog.read_text()
    found = VERSION_LINE.search(code)
    if found is None:
        raise ValueError(f"no `__version__ = \"...\"` line in {init}")
    if _parts(version) <= _parts(found.group(1)):
        raise ValueError(f"{version} is not above the current version {found.group(1)}")
    if "\n## Unreleased\n" not in notes:
        raise ValueError(f"{changelog} has no `## Unreleased` section to release")
    init.write_text(VERSION_LINE.sub(f'__version__ = "{version}"', code, count=1))
    changelog.write_text(notes.replace("\n## Unreleased\n", f"\n## Unreleased\n\n## {version} — {date}\n", 1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("version")
    p.add_argument("--date", default=datetime.date.today().isoformat())
    args = p.parse_args(argv)
    try:
        release(args.version, args.date)
    except ValueError as err:
        print(f"release: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
