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
import platform
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results.json"
QUICK_RESULTS = ROOT / "experiments" / "results.quick.json"
QUICK_EPOCHS = 5

# Stated noise (see docs/reproducibility.md): a fixed-seed accuracy figure is bit-identical on
# one machine with one device count; across machines, device counts and XLA versions the last
# bits differ and 1500 chaotic epochs carry them into the third decimal, so it gets 1 % of its
# value. Seed spreads (a standard deviation over a few seeds) 25 %; wall times on a shared VM
# 50 %; counts 0.
ACCURACY, SPREAD, TIMING, EXACT = 0.01, 0.25, 0.5, 0.0


class Figure(NamedTuple):
    name: str
    value: float
    noise: float          # absolute tolerance beyond the printed precision
    unit: str
    command: str
    quick: bool
    date: str
    versions: dict
    machine: dict
    source: str           # "measured" or the stored output file it was read from


class Value(NamedTuple):
    key: str
    value: float
    unit: str
    rel_noise: float


class Job(NamedTuple):
    name: str
    command: Callable[[bool], list[list[str]]]      # quick -> steps: nested-ae argv, or a
                                                    # script path (.py) and its arguments
    read: Callable[[Path], Iterable[Value]]         # run folder -> values
    source: str = "measured"


class ReproduceError(Exception):
    pass


# ---------------------------------------------------------------- environment ----------------
def versions() -> dict:
    import flax
    import jax
    import numpy
    import optax
    return {"python": platform.python_version(), "jax": jax.__version__,
            "flax": flax.__version__, "optax": optax.__version__, "numpy": numpy.__version__}


def machine() -> dict:
    import jax
    return {"platform": platform.platform(), "cpus": os.cpu_count(),
            "device": jax.devices()[0].device_kind}


def today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# ---------------------------------------------------------------- commands -------------------
PAPER_AE1 = "experiments/perovskite/ae1_bandgap.toml"
PAPER_CHAIN = "experiments/perovskite/nested_pce.toml"
SMOOTH = "experiments/synthetic/nested_smooth.toml"
NOISY = "experiments/synthetic/nested_noisy.toml"
INDEPENDENT = ["--set", "chain.split=independent"]
PER_SITE = "experiments/custom_module/per_site_bandgap.toml"
L1_0001 = ["--set", "atomic.encoder.l1=0.001"]
L1_001 = ["--set", "atomic.encoder.l1=0.01"]
HONEST = ["--set", "chain.split=matched", "--set", "atomic.scaler=train",
          "--set", "device.scaler=train"]


def epochs_set(scales: Iterable[str], quick: bool) -> list[str]:
    """--set overrides that shorten every scale's training in quick mode."""
    return [a for s in scales for a in ("--set", f"{s}.training.epochs={QUICK_EPOCHS}")] \
        if quick else []


def train(config: str, scales: tuple[str, ...], extra: list[str] = ()) -> Callable:
    return lambda quick: [["train", config, *extra, *epochs_set(scales, quick), "--quiet",
                           "--out", "{out}"]]


def sweep_seeds(config: str, seeds: int, scales: tuple[str, ...], extra: list[str] = ()):
    return lambda quick: [["sweep", config, "--seeds", str(seeds), *extra,
                           *epochs_set(scales, quick), "--quiet", "--out", "{out}"]]


def compare(config: str, cv: str | None = None, extra: list[str] = ()) -> Callable:
    return lambda quick: [["compare", config, *(["--cv", cv] if cv else []), *extra,
                           *(["--epochs", str(QUICK_EPOCHS)] if quick else []), "--quiet",
                           "--out", "{out}"]]


def campaign(config: str, objective: str) -> Callable:
    """20 simulated campaigns per default method, the honest chain at 300 epochs (the 200-trial
    runs of docs/bayesian-optimisation.md do not fit this machine's budget with `retrained`)."""
    return lambda quick: [["campaign", config, "--objective", objective, "--trials",
                           "4" if quick else "20", "--init", "5", "--epochs",
                           str(QUICK_EPOCHS) if quick else "300", "--quiet", "--out", "{out}"]]


def demo_splits(quick: bool) -> list[list[str]]:
    """The demo (matched folds, the default), then its own config with the paper's protocol."""
    epochs = ["--epochs", str(QUICK_EPOCHS)] if quick else []
    return [["demo", *epochs, "--quiet", "--out", "{out}/matched"],
            ["train", "{out}/matched/config.toml", "--set", "chain.split=independent",
             *epochs_set(("scale1", "scale2"), quick), "--quiet", "--out", "{out}/independent"]]


def latent_map(quick: bool) -> list[list[str]]:
    return [["experiments/perovskite/latent_map.py", "experiments/perovskite/nested_pce_latent2.toml",
             *(["--epochs", str(QUICK_EPOCHS)] if quick else []), "--out", "{out}"]]


# ---------------------------------------------------------------- readers --------------------
def metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


def pooled(m: dict, scale: str, head: str) -> dict:
    return m["scales"][scale]["heads"][head]["pooled_val"]


def read_ae1(out: Path) -> list[Value]:
    m = metrics(out)
    gap = pooled(m, "atomic", "gap")
    return [Value("mae", gap["mae"], "eV", ACCURACY), Value("rmse", gap["rmse"], "eV", ACCURACY),
            Value("r2", gap["r2"], "", ACCURACY),
            Value("recon_mae", pooled(m, "atomic", "descriptors")["mae"], "std. units", ACCURACY),
            Value("wall_s", m["wall_seconds"], "s", TIMING)]


def read_chain(out: Path) -> list[Value]:
    m = metrics(out)
    pce = pooled(m, "device", "pce")
    leaky = m["chain"]["scales"]["device"]
    return [Value("pce_mae", pce["mae"], "%", ACCURACY),
            Value("pce_rmse", pce["rmse"], "%", ACCURACY), Value("pce_r2", pce["r2"], "", ACCURACY),
            Value("etl_accuracy", pooled(m, "device", "etl")["accuracy"], "", ACCURACY),
            Value("htl_accuracy", pooled(m, "device", "htl")["accuracy"], "", ACCURACY),
            Value("latent_recon_mae", pooled(m, "device", "atomic_latent")["mae"], "std. units",
                  ACCURACY),
            Value("ae1_mae", pooled(m, "atomic", "gap")["mae"], "eV", ACCURACY),
            Value("leaky_rows", leaky["leaky_val_rows"], "rows", EXACT),
            Value("val_rows", leaky["val_rows"], "rows", EXACT),
            Value("wall_s", m["wall_seconds"], "s", TIMING)]


def read_seeds(metric: str, unit: str) -> Callable[[Path], list[Value]]:
    def read(out: Path) -> list[Value]:
        runs = pd.read_csv(out / "sweep_runs.csv")[metric]
        return [Value("mean", float(runs.mean()), unit, ACCURACY),
                Value("std", float(runs.std(ddof=0)), unit, SPREAD),
                Value("seeds", len(runs), "seeds", EXACT)]
    return read


def slug(text: str) -> str:
    keep = "".join(c if c.isalnum() else "_" for c in text.lower())
    return "_".join(p for p in keep.split("_") if p)


def read_compare(out: Path) -> list[Value]:
    """One value per (target, split, model, column) of compare.csv, e.g.
    ``device_pce.matched.random_forest.mae``."""
    table = pd.read_csv(out / "compare.csv")
    cols = {"mae": ACCURACY, "rmse": ACCURACY, "r2": ACCURACY, "fold_mae_mean": ACCURACY,
            "fold_mae_std": SPREAD}
    return [Value(f"{slug(r.target)}.{r.split}.{slug(r.model.split(':')[0])}.{c}",
                  float(getattr(r, c)), "", noise)
            for r in table.itertuples() for c, noise in cols.items()]


def read_compare_reconstruction(out: Path) -> list[Value]:
    table = pd.read_csv(out / "compare.csv")
    cols = {"val_mae_mean": ACCURACY, "val_mae_std": SPREAD, "train_mae_mean": ACCURACY}
    return [Value(f"{slug(r.model)}.{c}", float(getattr(r, c)), "std. units", noise)
            for r in table.itertuples() for c, noise in cols.items()] + \
        [Value("wall_s", float(table["seconds"].max()), "s", TIMING)]


def read_group_folds(out: Path) -> list[Value]:
    """Device-row fold sizes of the group_composition split (folds.csv of compare)."""
    folds = pd.read_csv(out / "folds.csv")
    sel = folds[(folds["split"] == "group_composition") & (folds["scale"] == "device")]
    sizes = sel["fold"].value_counts().sort_index()
    return [Value(f"group_composition.fold{int(k)}_rows", int(v), "rows", EXACT)
            for k, v in sizes.items()]


def read_demo_splits(out: Path) -> list[Value]:
    values = []
    for mode in ("matched", "independent"):
        m = metrics(out / mode)
        y2 = pooled(m, "scale2", "y2")
        values += [Value(f"{mode}.leaky_rows", m["chain"]["scales"]["scale2"]["leaky_val_rows"],
                         "rows", EXACT),
                   Value(f"{mode}.y1_mae", pooled(m, "scale1", "y1")["mae"], "", ACCURACY),
                   Value(f"{mode}.y2_mae", y2["mae"], "", ACCURACY),
                   Value(f"{mode}.y2_r2", y2["r2"], "", ACCURACY),
                   Value(f"{mode}.kind_accuracy", pooled(m, "scale2", "kind")["accuracy"], "",
                         ACCURACY)]
    return values


def read_latent_map(out: Path) -> list[Value]:
    """The run's metrics and, from latent_map.csv, the devices whose composition AE1 gives a
    gap below 1.3 eV: how many, and their mean predicted PCE against all rows'."""
    table = pd.read_csv(out / "latent_map.csv")
    low = table["atomic.gap"] < 1.3
    chain = {v.key: v for v in read_chain(out)}
    keep = ("pce_mae", "pce_rmse", "pce_r2", "etl_accuracy", "htl_accuracy", "latent_recon_mae",
            "ae1_mae", "wall_s")
    return [chain[k] for k in keep] + [
        Value("low_gap_rows", int(low.sum()), "rows", EXACT),
        Value("low_gap_mean_pce", float(table.loc[low, "device.pce"].mean()), "%", ACCURACY),
        Value("all_mean_pce", float(table["device.pce"].mean()), "%", ACCURACY)]


def read_campaign(out: Path) -> list[Value]:
    """Per method: mean and median share of the pool explored before its best was found (%),
    from campaign.csv through the package's own summary."""
    from nested_ae_jax.bo.report import summary_table
    table = summary_table(pd.read_csv(out / "campaign.csv"))
    return [Value(f"{slug(r['method'])}.{k}", float(r[f"{k} %"]), "%", SPREAD)
            for r in table.to_dict("records") for k in ("mean", "median")]


def read_both(*readers: Callable) -> Callable[[Path], list[Value]]:
    return lambda out: [v for r in readers for v in r(out)]


def read_jsonl(path: Callable[[Path], Path], picks: dict[str, tuple[dict, str, str]],
               noise: float = EXACT) -> Callable:
    """Values from a JSON-lines output (a benchmark's stdout, or a stored output measured
    where this machine cannot re-measure, a GPU): key -> (fields the line must match, field,
    unit)."""
    def read(out: Path) -> list[Value]:
        lines = [json.loads(s) for s in path(out).read_text().splitlines()
                 if s.startswith("{")]
        def pick(match: dict, field: str):
            hits = [d for d in lines if all(d.get(k) == v for k, v in match.items())]
            if not hits:
                raise ReproduceError(f"{path}: no line with {match}")
            return hits[0][field]
        return [Value(k, pick(m, f), u, ACCURACY if u == "eV" else noise)
                for k, (m, f, u) in picks.items()]
    return read


GPU_SPEED = "benchmarks/results/gpu_h200_speed.txt"
SPEED_PICKS = {
    "floor_5": ({"name": "floor", "models": 5}, "model_steps_per_s", "model-steps/s"),
    "loop_5": ({"name": "loop", "models": 5}, "model_steps_per_s", "model-steps/s"),
    "floor_100": ({"name": "floor", "models": 100}, "model_steps_per_s", "model-steps/s"),
    "loop_100": ({"name": "loop", "models": 100}, "model_steps_per_s", "model-steps/s"),
    "ae1_protocol_s": ({"name": "ae1_protocol"}, "wall_s", "s"),
    "ae1_protocol_mae": ({"name": "ae1_protocol"}, "pooled_val_mae_eV", "eV"),
}
GPU_SPEED_PICKS = {
    **SPEED_PICKS,
    "loop_1000": ({"name": "loop", "models": 1000}, "model_steps_per_s", "model-steps/s"),
    "loop_1000_s": ({"name": "loop", "models": 1000}, "wall_s", "s"),
    "loop_10000": ({"name": "loop", "models": 10000}, "model_steps_per_s", "model-steps/s"),
    "loop_10000_s": ({"name": "loop", "models": 10000}, "wall_s", "s"),
}


def read_stored_pytest(path: str) -> Callable:
    """Passed / failed counts of a stored pytest output's summary line."""
    def read(_out: Path) -> list[Value]:
        last = [s for s in (ROOT / path).read_text().splitlines() if " passed" in s][-1]
        words = last.replace(",", " ").split()
        count = {w: int(words[i - 1]) for i, w in enumerate(words) if w in ("passed", "failed")}
        return [Value(k, count.get(k, 0), "tests", EXACT) for k in ("passed", "failed")]
    return read


# ---------------------------------------------------------------- registry -------------------
JOBS: dict[str, Job] = {j.name: j for j in [
    Job("ae1", train(PAPER_AE1, ("atomic",)), read_ae1),
    Job("chain_paper", train(PAPER_CHAIN, ("atomic", "device")), read_chain),
    Job("chain_honest", train(PAPER_CHAIN, ("atomic", "device"), HONEST), read_chain),
    Job("ae1_seeds", sweep_seeds(PAPER_AE1, 10, ("atomic",)), read_seeds("gap.mae", "eV")),
    Job("chain_honest_seeds", sweep_seeds(PAPER_CHAIN, 5, ("atomic", "device"), HONEST),
        read_seeds("pce.mae", "%")),
    Job("compare_pce", compare(PAPER_CHAIN), read_compare),
    Job("compare_pce_grouped", compare(PAPER_CHAIN, "group_rows,group_composition"),
        read_both(read_compare, read_group_folds)),
    Job("compare_synthetic_smooth", compare(SMOOTH),
        read_compare_reconstruction),
    Job("compare_synthetic_noisy", compare(NOISY),
        read_compare_reconstruction),
    Job("compare_synthetic_smooth_independent", compare(SMOOTH, extra=INDEPENDENT),
        read_compare_reconstruction),
    Job("compare_synthetic_noisy_independent", compare(NOISY, extra=INDEPENDENT),
        read_compare_reconstruction),
    Job("per_site", train(PER_SITE, ("atomic",)), read_ae1),
    Job("per_site_seeds", sweep_seeds(PER_SITE, 10, ("atomic",)), read_seeds("gap.mae", "eV")),
    Job("ae1_l1_0001_seeds", sweep_seeds(PAPER_AE1, 10, ("atomic",), L1_0001),
        read_seeds("gap.mae", "eV")),
    Job("per_site_l1_001", train(PER_SITE, ("atomic",), L1_001), read_ae1),
    Job("campaign_gap_target", campaign(PAPER_AE1, "target=1.34:atomic.gap"), read_campaign),
    Job("campaign_pce_max", campaign(PAPER_CHAIN, "max:device.pce"), read_campaign),
    Job("demo_splits", demo_splits, read_demo_splits),
    Job("latent_map", latent_map, read_latent_map),
    Job("speed_cpu", lambda quick: [["benchmarks/speed.py", "--quick", "--skip-torch"]],
        read_jsonl(lambda out: out / "stdout.txt", SPEED_PICKS, TIMING)),
    Job("gpu_h200_speed", lambda quick: [],
        read_jsonl(lambda _out: ROOT / GPU_SPEED, GPU_SPEED_PICKS), source=GPU_SPEED),
    Job("gpu_h200_tests_default_precision", lambda quick: [],
        read_stored_pytest("benchmarks/results/gpu_h200_tests_default_precision.txt"),
        source="benchmarks/results/gpu_h200_tests_default_precision.txt"),
]}


# ---------------------------------------------------------------- the pages' check ----------
# A quoted figure is a number directly followed by its marker, e.g. ``0.165<!--fig:ae1.mae-->``
# (HTML comments render invisibly). A table whose header row is preceded by the line
# ``<!--figs:table-->`` is fully marked: every number in its body cells must carry a marker,
# except in the first column (labels) and in columns whose header names the paper (cited
# figures) or a target (goals).

MARKED = re.compile(r"(?P<num>[-+]?\d[\d,]*(?:\.\d+)?)<!--fig:(?P<name>[\w.\-]+)-->")
NUMBER = re.compile(r"(?<![\w.^])[-+]?\d[\d,]*(?:\.\d+)?")
FULL_TABLE = "<!--figs:table-->"
EXEMPT_HEADERS = ("paper", "target")      # cited figures and goals, not our measurements
PAGES = ("README.md", "experiments/**/README.md", "benchmarks/README.md", "docs/*.md")


class Quote(NamedTuple):
    page: str
    line: int
    text: str          # the number as printed
    name: str


def quotes(page: str, text: str) -> list[Quote]:
    return [Quote(page, text.count("\n", 0, m.start()) + 1, m["num"], m["name"])
            for m in MARKED.finditer(text)]


def unmarked_in_tables(page: str, text: str) -> list[str]:
    """Problems: numbers in the body of a fully-marked table that carry no marker."""
    problems, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() != FULL_TABLE:
            continue
        header = [c.strip() for c in lines[i + 1].strip().strip("|").split("|")]
        exempt = {0} | {k for k, h in enumerate(header)
                        if any(w in h.lower() for w in EXEMPT_HEADERS)}
        for j in range(i + 3, len(lines)):
            if not lines[j].lstrip().startswith("|"):
                break
            cells = lines[j].strip().strip("|").split("|")
            for k, cell in enumerate(cells):
                rest = MARKED.sub("", re.sub(r"`[^`]*`", "", cell))
                if k not in exempt and NUMBER.search(rest):
                    problems.append(f"{page}:{j + 1}: unmarked number "
                                    f"'{NUMBER.search(rest)[0]}' in a fully-marked table")
    return problems


def printed_decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def check_quote(q: Quote, figures: dict[str, dict]) -> str | None:
    """None when the quoted number agrees with the results entry: within its noise plus half
    a unit of the printed last digit."""
    where = f"{q.page}:{q.line}: {q.text} ({q.name})"
    entry = figures.get(q.name)
    if entry is None:
        return f"{where}: not in the results file"
    if entry.get("quick"):
        return f"{where}: the results entry is a --quick one"
    quoted = float(q.text.replace(",", ""))
    allowed = float(entry["noise"]) + 0.5 * 10 ** -printed_decimals(q.text)
    if abs(quoted - float(entry["value"])) > allowed + 1e-12:
        return f"{where}: results file says {entry['value']:.6g} (noise {entry['noise']:.3g})"
    return None


def printed(value: float, like: str) -> str:
    """value printed as ``like`` is: same decimals, thousands separators if it has them."""
    d = printed_decimals(like)
    return f"{value:,.{d}f}" if "," in like else f"{value:.{d}f}"


def update_text(page: str, text: str, figures: dict[str, dict]) -> tuple[str, list[str]]:
    """The page with every marked figure that has a full (not quick) entry printed from it;
    and the changes, 'page:line: name old -> new'."""
    changes = []

    def new(m: re.Match) -> str:
        entry = figures.get(m["name"])
        if entry is None or entry.get("quick"):
            return m[0]
        text_new = printed(float(entry["value"]), m["num"])
        if text_new != m["num"]:
            line = text.count("\n", 0, m.start()) + 1
            changes.append(f"{page}:{line}: {m['name']} {m['num']} -> {text_new}")
        return f"{text_new}<!--fig:{m['name']}-->"
    return MARKED.sub(new, text), changes


def update_pages(figures: dict[str, dict], root: Path = ROOT) -> list[str]:
    changes = []
    for path in page_files(root):
        page = str(path.relative_to(root))
        text, changed = update_text(page, path.read_text(), figures)
        if changed:
            path.write_text(text)
            changes += changed
    return changes


def page_files(root: Path = ROOT) -> list[Path]:
    return sorted({p for pattern in PAGES for p in root.glob(pattern)})


def check_pages(figures: dict[str, dict], root: Path = ROOT) -> list[str]:
    problems = []
    for path in page_files(root):
        page, text = str(path.relative_to(root)), path.read_text()
        problems += [p for q in quotes(page, text) if (p := check_quote(q, figures))]
        problems += unmarked_in_tables(page, text)
    return problems


# ---------------------------------------------------------------- running --------------------
def is_script(argv: list[str]) -> bool:
    return argv[0].endswith(".py")


def shown(steps: list[list[str]]) -> str:
    """The commands as a user types them."""
    return " && ".join((".venv/bin/python " if is_script(a) else "nested-ae ")
                       + " ".join(shlex.quote(w) for w in a) for a in steps)


def run_step(name: str, argv: list[str], out: Path) -> None:
    """One step; its stdout is kept as OUT/stdout.txt (benchmarks print JSON lines)."""
    head = [sys.executable] if is_script(argv) else [sys.executable, "-m", "nested_ae_jax.cli"]
    proc = subprocess.run([*head, *argv], cwd=ROOT, capture_output=True, text=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "stdout.txt").write_text(proc.stdout)
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
                   v.unit, command, quick, date, env_versions, env_machine, job.source)
            for v in job.read(out)]


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
