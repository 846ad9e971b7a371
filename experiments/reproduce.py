"""Regenerate every figure the project's pages quote, into one results file.

    .venv/bin/python experiments/reproduce.py                 # every figure -> experiments/results.json
    .venv/bin/python experiments/reproduce.py --only ae1 chain_paper
    .venv/bin/python experiments/reproduce.py --quick         # few epochs -> experiments/results.quick.json
    .venv/bin/python experiments/reproduce.py --list

Each job runs the project's own command (the ``nested-ae`` CLI in a subprocess, so the figure
is the command's, with its device split) or reads a stored output that cannot be re-measured
here (GPU runs: marked ``source``), and yields named figures. The results file maps a figure's
name (``JOB.KEY``) to its entry (``Figure``): value, noise (the tolerance a quoted figure is
checked against, beyond its printed precision), unit, the command that reproduces it, package
versions, machine, date, quick flag, source. With ``--only`` the new entries are merged into
the file's others; the file is written to a temporary file, then renamed. Quick entries never
satisfy the pages' check (tests/test_quoted_figures.py). See docs/reproducibility.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))   # the figure_* modules beside it

from figure_jobs import JOBS                                             # noqa: E402
from figure_pages import (check_pages, page_files, quotes, update_pages,  # noqa: E402,F401
                          update_text)
from figure_records import (QUICK_EPOCHS, ROOT, Figure, Job, ReproduceError,  # noqa: E402
                            machine, today, versions)

RESULTS = ROOT / "experiments" / "results.json"
QUICK_RESULTS = ROOT / "experiments" / "results.quick.json"


# ---------------------------------------------------------------- running --------------------
def is_script(argv: list[str]) -> bool:
    return argv[0].endswith(".py")


def shown(steps: list[list[str]]) -> str:
    """The commands as a user types them."""
    return " && ".join((".venv/bin/python " if is_script(a) else "nested-ae ")
                       + " ".join(shlex.quote(w) for w in a) for a in steps)


def run_step(name: str, argv: list[str], out: Path) -> None:
    """One step; its stdout is appended to OUT/stdout.txt (benchmarks print JSON lines)."""
    head = [sys.executable] if is_script(argv) else [sys.executable, "-m", "nested_ae_jax.cli"]
    proc = subprocess.run([*head, *argv], cwd=ROOT, capture_output=True, text=True)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "stdout.txt", "a") as f:          # every step's, in order
        f.write(proc.stdout)
    if proc.returncode:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ReproduceError(f"{name}: {shown([argv])} failed: {tail[0]}")


def run_job(job: Job, quick: bool, work: Path, env_versions: dict, env_machine: dict
            ) -> list[Figure]:
    out = work / job.name
    for argv in job.command(quick):
        run_step(job.name, [a.replace("{out}", str(out)) for a in argv], out)
    command = shown(steps_shown(job, quick)) or f"stored output {job.source}"
    date = today() if job.source == "measured" else stored_date(job.source)
    return [Figure(f"{job.name}.{v.key}", float(v.value), abs(float(v.value)) * v.rel_noise,
                   v.unit, command, quick, date, env_versions, env_machine, job.source,
                   checkout())
            for v in job.read(out)]


def checkout() -> str:
    """The code that measures: git HEAD, with "+dirty" when the tracked files differ from it
    (the package is installed editable from this tree)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()
    head = git("rev-parse", "--short=12", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def steps_shown(job: Job, quick: bool) -> list[list[str]]:
    """The job's steps with the run folder shown as runs/JOB."""
    return [[a.replace("{out}", f"runs/{job.name}") for a in argv] for argv in job.command(quick)]


def stored_date(path: str) -> str:
    """A stored output's date: the commit that added it (git), else its mtime."""
    proc = subprocess.run(["git", "log", "--diff-filter=A", "--format=%cs", "--", path],
                          cwd=ROOT, capture_output=True, text=True)
    dates = proc.stdout.split()
    return dates[-1] if dates else datetime.date.fromtimestamp(
        (ROOT / path).stat().st_mtime).isoformat()


def read_results(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())["figures"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ReproduceError(f"{path}: not a results file ({type(e).__name__}: {e})") from None


def write_results(path: Path, figures: dict[str, dict]) -> None:
    """Atomically: a temporary file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"format": "nested_ae_jax figures 1", "figures": dict(sorted(
        figures.items()))}, indent=1) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(body)
    os.replace(tmp, path)


def select(names: list[str] | None) -> list[Job]:
    unknown = [n for n in names or [] if n not in JOBS]
    if unknown:
        raise ReproduceError(f"unknown figure job {', '.join(unknown)}; known: "
                             f"{', '.join(JOBS)}")
    return [JOBS[n] for n in names] if names else list(JOBS.values())


def reproduce(names: list[str] | None, quick: bool, out: Path,
              progress: Callable[[str], None] = print) -> dict[str, dict]:
    jobs = select(names)
    figures = read_results(out)
    env_versions, env_machine = versions(), machine()
    with tempfile.TemporaryDirectory(prefix="reproduce_") as work:
        for job in jobs:
            progress(f"{job.name}: {shown(steps_shown(job, quick)) or job.source}")
            new = run_job(job, quick, Path(work), env_versions, env_machine)
            figures = {k: v for k, v in figures.items() if not k.startswith(job.name + ".")}
            figures.update({f.name: f._asdict() for f in new})
            write_results(out, figures)     # after every job: a long run keeps what it did
            progress("  " + ", ".join(f"{f.name.split('.', 1)[1]}={f.value:.4g}"
                                      for f in new[:8]) + (" ..." if len(new) > 8 else ""))
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK_EPOCHS} epochs per scale, into {QUICK_RESULTS.name}")
    p.add_argument("--only", nargs="+", metavar="JOB", help="these jobs only (merged)")
    p.add_argument("--out", type=Path, help=f"results file (default {RESULTS.name}, "
                                            f"{QUICK_RESULTS.name} with --quick)")
    p.add_argument("--list", action="store_true", help="list the jobs and their commands")
    p.add_argument("--check", action="store_true",
                   help="check the pages' quoted figures against the results file; no run")
    p.add_argument("--update-pages", action="store_true",
                   help="print every marked figure of the pages from the results file (same "
                        "precision) and list what moved; no run")
    a = p.parse_args(argv)
    try:
        if a.update_pages:
            print("\n".join(update_pages(read_results(a.out or RESULTS))) or "no figure moved")
            return 0
        if a.check:
            problems = check_pages(read_results(a.out or RESULTS))
            print("\n".join(problems) or "every quoted figure agrees with the results file")
            return 1 if problems else 0
        if a.list:
            for job in select(a.only):
                print(f"{job.name:34s} {shown(steps_shown(job, False)) or job.source}")
            return 0
        reproduce(a.only, a.quick, a.out or (QUICK_RESULTS if a.quick else RESULTS))
    except ReproduceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
