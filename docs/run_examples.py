"""Run every Python example of the documentation: the ```python blocks of docs/**/*.md and
README.md.

    python docs/run_examples.py              # every page; exit status 1 if any example fails
    python docs/run_examples.py docs/x.md    # some pages
    python docs/run_examples.py --list       # the blocks, and the skipped ones with reasons

Each page runs in a fresh interpreter in a fresh temporary directory that holds a link to the
repository's experiments/ (examples name its configs as from the repository root), its blocks
in order in one namespace, so a block may use what an earlier block of the page defined. A
failure is reported as PAGE:LINE (the line of the failing statement in the markdown file) with
its traceback, and stops that page.

A block is skipped only when the line just before its fence is

    <!-- skip-example: REASON -->

which is for an example that needs a GPU or a long run (or is run elsewhere, with the test
named in REASON); ``--list`` prints every skip and its reason. CI runs this after the test
suite (.ci/run), outside pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```python[ \t]*$")
SKIP = re.compile(r"^<!--\s*skip-example:\s*(.*?)\s*-->\s*$")
LINKED = ("experiments",)  # repository folders an example may name by relative path


@dataclass(frozen=True)
class Block:
    """One ```python block: its page, the line of its first code line (1-based), its code,
    and why it is skipped (None: it runs)."""

    page: Path
    line: int
    code: str
    skip: str | None = None

    @property
    def where(self) -> str:
        return f"{shown(self.page)}:{self.line}"


def shown(page: Path) -> str:
    """``page`` relative to the repository when inside it."""
    return str(page.relative_to(REPO) if page.is_relative_to(REPO) else page)


def pages() -> list[Path]:
    """README.md and every markdown page under docs/, in a fixed order."""
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def blocks(page: Path) -> list[Block]:
    """The ```python blocks of ``page`` (other fences, e.g. ```toml or bare ```, are not
    examples)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        if FENCE.match(lines[i]):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            if j == len(lines):
                raise SystemExit(f"{page}:{i + 1}: unclosed ```python block")
            prev = lines[i - 1] if i else ""
            skip = SKIP.match(prev)
            out.append(Block(page, i + 2, "\n".join(lines[i + 1:j]) + "\n",
                             skip.group(1) if skip else None))
            i = j
        i += 1
    return out


# The driver runs in the fresh interpreter: each block compiled with the markdown file's name
# and line numbers, so a traceback points into the page.
DRIVER = r"""
import json, sys, traceback
blocks = json.load(open(sys.argv[1]))
scope = {"__name__": "__main__"}
for b in blocks:
    code = compile("\n" * (b["line"] - 1) + b["code"], b["file"], "exec")
    try:
        exec(code, scope)
    except BaseException:
        tb = traceback.extract_tb(sys.exc_info()[2])
        lines = [f.lineno for f in tb if f.filename == b["file"]]
        print(f"EXAMPLE FAILED {b['page']}:{lines[-1] if lines else b['line']} "
              f"(block at line {b['line']})", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
"""


def run_page(page: Path, runnable: list[Block]) -> tuple[bool, float, str]:
    """Run ``runnable`` (blocks of ``page``) in a fresh interpreter and temporary directory:
    (passed, seconds, output)."""
    with tempfile.TemporaryDirectory(prefix="nae-example-") as tmp:
        for name in LINKED:
            os.symlink(REPO / name, Path(tmp) / name)
        spec = Path(tmp) / ".blocks.json"
        spec.write_text(json.dumps([{"file": str(b.page), "page": shown(b.page),
                                     "line": b.line, "code": b.code} for b in runnable]))
        env = {**os.environ, "MPLBACKEND": "Agg"}
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", DRIVER, str(spec)], cwd=tmp, env=env,
                              capture_output=True, text=True)
        return proc.returncode == 0, time.perf_counter() - start, proc.stdout + proc.stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", type=Path, help="markdown pages (default: all)")
    parser.add_argument("--list", action="store_true", help="list the blocks; run nothing")
    args = parser.parse_args(argv)
    chosen = [p.resolve() for p in args.pages] or pages()
    failed, total = [], time.perf_counter()
    for page in chosen:
        found = blocks(page)
        for b in found:
            if b.skip is not None:
                print(f"skip {b.where}: {b.skip}")
            elif args.list:
                print(f"run  {b.where}")
        runnable = [b for b in found if b.skip is None]
        if args.list or not runnable:
            continue
        ok, seconds, output = run_page(page, runnable)
        print(f"{'ok  ' if ok else 'FAIL'} {shown(page)}: {len(runnable)} "
              f"block(s), {seconds:.1f} s", flush=True)
        if not ok:
            failed.append(page)
            print(output[-6000:], flush=True)
    if not args.list:
        print(f"{len(failed)} page(s) failed; {time.perf_counter() - total:.1f} s in all")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
