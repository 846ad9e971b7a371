"""The figure jobs of experiments/reproduce.py: the command each runs (the ``nested-ae`` CLI or
a benchmark script) and the reader that turns its output into named values."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd

from figure_records import (ACCURACY, EXACT, QUICK_EPOCHS, ROOT, SPREAD, TIMING, Job,
                            ReproduceError, Value)

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


def campaign(config: str, objective: str, trials: int = 20, methods: str | None = None
             ) -> Callable:
    """Simulated campaigns (20 per default method, or ``trials`` of ``methods``), the honest
    chain at 300 epochs."""
    return lambda quick: [["campaign", config, "--objective", objective, "--trials",
                           "4" if quick else str(trials), "--init", "5", "--epochs",
                           str(QUICK_EPOCHS) if quick else "300",
                           *(["--methods", methods] if methods else []),
                           "--quiet", "--out", "{out}"]]


WITHOUT_RETRAINED = "latent,raw,ensemble,random,leaky"
WITH_REFITS = "retrained,hybrid"  # the methods that retrain the objective scale per trial


def demo_campaign(quick: bool) -> list[list[str]]:
    """A new user's kind of pool: the demo's two-scale synthetic chain (nested by
    construction) on 240 rows with noise, its downstream target maximised, 50 trials of
    every method (the demo trained 1 epoch only to write its config; the campaign trains
    its own chain)."""
    return [["demo", "--rows", "240", "--noise", "0.05", "--epochs", "1", "--quiet",
             "--out", "{out}/demo"],
            ["campaign", "{out}/demo/config.toml", "--objective", "max:scale2.y2",
             "--trials", "4" if quick else "50", "--init", "5", "--epochs",
             str(QUICK_EPOCHS) if quick else "300", "--methods",
             "retrained,latent,raw,ensemble,random,hybrid", "--quiet", "--out", "{out}"]]


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
    """Per method: mean, median and quartiles of the share of the pool explored before its
    best was found (%), from campaign.csv through the package's own summary."""
    from nested_ae_jax.bo.report import summary_table
    table = summary_table(pd.read_csv(out / "campaign.csv"))
    return [Value(f"{slug(r['method'])}.{k}", float(r[f"{k} %"]), "%", SPREAD)
            for r in table.to_dict("records") for k in ("mean", "median", "q1", "q3")]


def read_campaign_seconds(out: Path) -> list[Value]:
    """Per method: the wall time of its campaigns (``label.wall_s``), from summary.md's
    "- wall time: LABEL S s, ..." line."""
    line = next(t for t in (out / "summary.md").read_text().splitlines()
                if t.startswith("- wall time:"))
    return [Value(f"{slug(label)}.wall_s", float(seconds), "s", TIMING)
            for label, seconds, _ in (p.strip().rsplit(" ", 2)
                                      for p in line.split(":", 1)[1].split(","))]


def read_both(*readers: Callable) -> Callable[[Path], list[Value]]:
    return lambda out: [v for r in readers for v in r(out)]


def json_lines(out: Path, file: Path | None = None) -> list[dict]:
    """The JSON lines of a benchmark's output: what its steps printed (OUT/stdout.txt, every
    step's, in order), or a stored ``file``."""
    text = (file or out / "stdout.txt").read_text()
    return [json.loads(s) for s in text.splitlines() if s.startswith("{")]


def read_jsonl(path: Callable[[Path], Path], picks: dict[str, tuple[dict, str, str]],
               noise: float = EXACT) -> Callable:
    """Values from a JSON-lines output (a benchmark's stdout, or a stored output measured
    where this machine cannot re-measure, a GPU): key -> (fields the line must match, field,
    unit)."""
    def read(out: Path) -> list[Value]:
        lines = json_lines(out, path(out))
        def pick(match: dict, field: str):
            hits = [d for d in lines if all(d.get(k) == v for k, v in match.items())]
            if not hits:
                raise ReproduceError(f"{path(out)}: no line with {match}")
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


SCALE_FIELDS = {"epochs": ("epochs", EXACT), "link_s": ("s", TIMING), "fit_s": ("s", TIMING),
                "compile_s": ("s", TIMING), "us_per_row_epoch": ("us", TIMING),
                "peak_rss_gb": ("GB", SPREAD)}


def read_scale(out: Path) -> list[Value]:
    """Per size N (``rowsN.FIELD``) the figures of benchmarks/scale.py, their ratios to the
    smallest size of the run, and the per-row-epoch ratio of each size to the previous one."""
    runs = sorted(json_lines(out), key=lambda d: d["rows"])
    first, values = runs[0], []
    for prev, d in zip([None, *runs], runs):
        key = f"rows{d['rows']}"
        values += [Value(f"{key}.{f}", d[f], unit, noise) for f, (unit, noise)
                   in SCALE_FIELDS.items()]
        values += [Value(f"{key}.time_ratio", d["us_per_row_epoch"] / first["us_per_row_epoch"],
                         "", TIMING),
                   Value(f"{key}.rss_ratio", d["peak_rss_gb"] / first["peak_rss_gb"], "", SPREAD)]
        if prev is not None:
            values.append(Value(f"{key}.time_ratio_to_previous",
                                d["us_per_row_epoch"] / prev["us_per_row_epoch"], "", TIMING))
    return values


def scale(sizes: str, quick_sizes: str) -> Callable:
    return lambda quick: [["benchmarks/scale.py", "--sizes", quick_sizes if quick else sizes,
                           *(["--row-epochs", "20000"] if quick else [])]]


def read_second_run(out: Path) -> list[Value]:
    lines = {str(d["run"]): d for d in json_lines(out)}
    return [Value(f"run{r}.{f}", lines[r][f], "s", TIMING) for r in ("1", "2")
            for f in ("wall_s", "fit_s")] + \
        [Value("ratio", lines["ratio"]["second_wall_over_fit"], "", TIMING),
         Value("overhead_s", lines["ratio"]["second_overhead_s"], "s", TIMING)]


CAMPAIGN_SPEED_BATCH5 = ("gp-ei", "gp-ts")


def campaign_speed(quick: bool) -> list[list[str]]:
    """Every method one pick per round, then the GP methods with batches of 5."""
    trials = ["--trials", "10" if quick else "200"]
    return [["benchmarks/campaign_speed.py", *trials],
            ["benchmarks/campaign_speed.py", *trials, "--batch", "5",
             "--methods", ",".join(CAMPAIGN_SPEED_BATCH5)]]


def read_campaign_speed(out: Path) -> list[Value]:
    """Per method and batch (``gp_ei.batch1.compiled_s``): wall times and the share of the pool
    explored before its best was found (%)."""
    return [Value(f"{slug(d['method'])}.batch{d['batch']}.{f}", scale_by * d[f], unit, noise)
            for d in json_lines(out)
            for f, unit, scale_by, noise in (("first_call_s", "s", 1, TIMING),
                                             ("compiled_s", "s", 1, TIMING),
                                             ("share_mean", "%", 100, SPREAD),
                                             ("share_median", "%", 100, SPREAD))]


CITED = "experiments/cited.toml"


def read_cited(_out: Path) -> list[Value]:
    """The paper's and METHOD.md's figures the pages cite (experiments/cited.toml)."""
    import tomllib
    table = tomllib.loads((ROOT / CITED).read_text())
    return [Value(k, e["value"], e["unit"], EXACT) for k, e in table.items()]


def read_dataset_facts(out: Path) -> list[Value]:
    """Shapes and sizes of the shipped data sets; CV groups of the paper chain's device data
    (experiments/dataset_facts.py)."""
    values = []
    for d in json_lines(out):
        if "dataset" in d:
            values += [Value(f"{d['dataset']}.{k}", d[k], u, EXACT)
                       for k, u in (("rows", "rows"), ("columns", "columns"), ("bytes", "B"))
                       if k in d] + [Value(f"{d['dataset']}.megabytes", d["bytes"] / 1e6, "MB",
                                           EXACT)]
        else:
            values += [Value(f"{d['scale']}.{d['split']}.{k}", d[k], "rows", EXACT)
                       for k in ("rows", "groups", "largest")]
    return values


def design_compare(quick: bool) -> list[list[str]]:
    """The paper chain trained, then benchmarks/design_speed.py on it: gradient design vs
    random search vs latent sampling at equal model evaluations, over three seeds."""
    size = ["--starts", "16", "--steps", "10", "--seeds", "1"] if quick else ["--seeds", "3"]
    return [["train", PAPER_CHAIN, *epochs_set(("atomic", "device"), quick), "--quiet",
             "--out", "{out}/chain"],
            ["benchmarks/design_speed.py", "{out}/chain", *size]]


def read_design(out: Path) -> list[Value]:
    """Per method the lowest and highest best predicted PCE over the seeds (%) and the model
    evaluations; the design call's compile time (first call) and run time (second call)."""
    lines = json_lines(out)
    rows = [d for d in lines if d.get("bench") == "design_compare"]
    values = []
    for method in dict.fromkeys(r["method"] for r in rows):
        best = [r["best_score"] for r in rows if r["method"] == method
                and r["best_score"] is not None] or [float("nan")]
        evals = {r["evaluations"] for r in rows if r["method"] == method}
        values += [Value(f"{slug(method)}.best_min", min(best), "%", ACCURACY),
                   Value(f"{slug(method)}.best_max", max(best), "%", ACCURACY),
                   Value(f"{slug(method)}.evaluations", max(evals), "evaluations", EXACT)]
    calls = {d["call"]: d for d in lines if d.get("bench") == "design_speed"}
    return values + [Value("compile_s", calls[1]["compile_s"], "s", TIMING),
                     Value("optimise_s", calls[2]["optimise_s"], "s", TIMING),
                     Value("seeds", len({r["seed"] for r in rows}), "seeds", EXACT)]


TUNE_SPACE = "experiments/perovskite/tune_space_ae1.toml"
TUNE_SPACE_PCE = "experiments/perovskite/tune_space_pce.toml"


def tune_steps(config: str, trials: int, settings: list[str], quick_scales: tuple[str, ...],
               *, scale: str | None = None, space: str | None = None,
               budget_minutes: int | None = None, ensemble: int = 1, lengths: int = 1,
               quick_trials: int | None = None, plain: list[str] | None = None,
               eta: int | None = None, rungs: int = 2) -> Callable:
    """`nested-ae tune` of ``config`` (``--scale``; ``trials`` settings, eta (default
    trials), rungs (default 2), 5 outer folds: a matched chain's own folds, else KFold; ``settings``: --set
    arguments; ``--space``, ``--budget-minutes``, ``--ensemble``, ``--lengths``) into
    OUT/tune; quick: 16
    epochs on ``quick_scales`` and ``quick_trials`` settings. plain: then ``train`` of the
    config with these --set arguments into OUT/plain, on the same folds, for comparison."""
    def steps(quick: bool) -> list[list[str]]:
        epochs = [a for s in quick_scales for a in ("--set", f"{s}.training.epochs=16")] \
            if quick else []
        n = str(quick_trials or trials) if quick else str(trials)
        opts = [*(["--space", space] if space else []),
                *(["--budget-minutes", str(budget_minutes)] if budget_minutes else []),
                *(["--ensemble", str(ensemble)] if ensemble > 1 else []),
                "--lengths", str(lengths)]
        argv = [["tune", config, *(["--scale", scale] if scale else []), "--trials", n,
                 "--eta", str(eta) if eta else n, "--rungs", str(rungs), "--outer-folds", "5",
                 *settings, *opts, *epochs,
                 "--quiet", "--out", "{out}/tune"]]
        if plain is not None:
            argv.append(["train", config, *plain, *epochs, "--quiet", "--out", "{out}/plain"])
        return argv
    return steps


def tune_ae1(trials: int, with_plain: bool = False, ensemble: int = 1, lengths: int = 1,
             eta: int | None = None, rungs: int = 2) -> Callable:
    """AE1 tuned (``trials`` settings, the KFold folds of `train` as outer folds, 2 inner
    folds, TUNE_SPACE, ``--ensemble``, ``--lengths``, ``--eta`` (default trials),
    ``--rungs``); with_plain: then the plain config with ``scaler = "train"`` trained on the
    same folds, for comparison."""
    return tune_steps(PAPER_AE1, trials, ["--set", "atomic.cv.n_splits=2"], ("atomic",),
                      space=TUNE_SPACE, ensemble=ensemble, lengths=lengths,
                      plain=["--set", "atomic.scaler=train"] if with_plain else None,
                      eta=eta, rungs=rungs)


def tune_pce(trials: int, ensemble: int = 1) -> Callable:
    """The paper chain's device scale tuned with the honest settings (HONEST: the matched
    folds of `compare`'s matched column are the outer folds; every scaler fit on training
    rows), TUNE_SPACE_PCE (the default space without the batch-size choice: one compiled
    group per rung), within 15 minutes. Inner folds: the configured 5 (a matched chain needs
    the same cv.n_splits on every scale, and fewer would change the outer folds)."""
    return tune_steps(PAPER_CHAIN, trials, HONEST, ("atomic", "device"), scale="device",
                      space=TUNE_SPACE_PCE, budget_minutes=15,
                      quick_trials=max(2, ensemble), ensemble=ensemble)


def tune_synthetic(config: str, trials: int) -> Callable:
    """The last scale of a nested synthetic chain tuned as a user would: the default space
    (batch size and latent size included), the default --lengths 4, the chain's matched
    folds as outer folds and 5 inner folds, within 15 minutes; then the plain config on the
    same folds."""
    return tune_steps(config, trials, [], ("ae1", "ae2"), scale="ae2", budget_minutes=15,
                      lengths=4, quick_trials=2, plain=[])


def read_tuned(head: str, unit: str, plain_scale: str | None = None
               ) -> Callable[[Path], list[Value]]:
    """A reader of tune.json's nested-CV figure of ``head`` (pooled outer MAE, per outer fold,
    the inner estimate), models, seconds and, with --budget-minutes, the seconds spent and
    whether they kept to it; with a plain run (of ``plain_scale``), its pooled and per-fold
    MAE."""
    def read(out: Path) -> list[Value]:
        t = json.loads((out / "tune" / "tune.json").read_text())
        cv = t["heads"][head]["mae"]
        values = [Value("outer", cv["outer"], unit, ACCURACY),
                  Value("inner", t["inner"], unit, ACCURACY),
                  Value("models", t["models"], "models", EXACT),
                  Value("seconds", t["seconds"], "s", TIMING)]
        values += [Value(f"outer_fold{k}", v, unit, ACCURACY)
                   for k, v in enumerate(cv["per_outer_fold"])]
        if "ensemble" in t:  # --ensemble K: the nested-CV figure of each split's K best
            ens = t["ensemble"]["heads"][head]["mae"]
            values += [Value("ensemble.outer", ens["outer"], unit, ACCURACY)]
            values += [Value(f"ensemble.outer_fold{k}", v, unit, ACCURACY)
                       for k, v in enumerate(ens["per_outer_fold"])]
        if t.get("budget"):  # --budget-minutes
            values += [Value("budget.spent_s", t["budget"]["spent_s"], "s", TIMING),
                       Value("budget.within", int(t["budget"]["within"]), "", EXACT)]
            if t["budget"]["projected_s"] is not None:  # at the first check, for the whole
                values += [Value("budget.projected_s", t["budget"]["projected_s"], "s",
                                 TIMING)]
        if plain_scale and (out / "plain").exists():
            m = metrics(out / "plain")
            values += [Value("plain", pooled(m, plain_scale, head)["mae"], unit, ACCURACY)]
            values += [Value(f"plain_fold{k}", f["val"][head]["mae"], unit, ACCURACY)
                       for k, f in enumerate(m["scales"][plain_scale]["folds"])]
        return values
    return read


read_tune = read_tuned("gap", "eV", "atomic")


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
    Job("compare_pce_tuned", compare(PAPER_CHAIN, "random,matched", ["--tune"]), read_compare),
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
    Job("campaign_gap_target", campaign(PAPER_AE1, "target:atomic.gap=1.34"), read_campaign),
    Job("campaign_pce_max", campaign(PAPER_CHAIN, "max:device.pce"), read_campaign),
    Job("campaign200_pce_max", campaign(PAPER_CHAIN, "max:device.pce", 200, WITHOUT_RETRAINED),
        read_campaign),
    Job("campaign200_gap_target", campaign(PAPER_AE1, "target:atomic.gap=1.34", 200,
                                           WITHOUT_RETRAINED), read_campaign),
    Job("campaign200_gap_max", campaign(PAPER_AE1, "max:atomic.gap", 200, WITHOUT_RETRAINED),
        read_campaign),
    Job("campaign200r_pce_max", campaign(PAPER_CHAIN, "max:device.pce", 200, WITH_REFITS),
        read_both(read_campaign, read_campaign_seconds)),
    Job("campaign200r_gap_target", campaign(PAPER_AE1, "target:atomic.gap=1.34", 200,
                                            WITH_REFITS), read_campaign),
    Job("campaign200r_gap_max", campaign(PAPER_AE1, "max:atomic.gap", 200, WITH_REFITS),
        read_campaign),
    Job("campaign_demo240", demo_campaign, read_campaign),
    Job("design_compare", design_compare, read_design),
    Job("tune_ae1", tune_ae1(4, with_plain=True), read_tune),
    Job("tune_ae1_8", tune_ae1(8), read_tune),
    Job("tune_ae1_8_ens3", tune_ae1(8, ensemble=3), read_tune),
    Job("tune_ae1_16_ens5", tune_ae1(16, ensemble=5), read_tune),
    Job("tune_ae1_8_ens3_len4", tune_ae1(8, ensemble=3, lengths=4), read_tune),
    Job("tune_ae1_16_ens5_len4", tune_ae1(16, ensemble=5, lengths=4), read_tune),
    Job("tune_ae1_64_ens5_len4", tune_ae1(64, ensemble=5, lengths=4), read_tune),
    Job("tune_ae1_32_eta4_ens5_len4", tune_ae1(32, ensemble=5, lengths=4, eta=4, rungs=3),
        read_tune),
    Job("tune_ae1_32_eta4_ens10_len4", tune_ae1(32, ensemble=10, lengths=4, eta=4, rungs=3),
        read_tune),
    Job("tune_ae1_32_eta4_ens16_len4", tune_ae1(32, ensemble=16, lengths=4, eta=4, rungs=3),
        read_tune),
    Job("tune_pce", tune_pce(4), read_tuned("pce", "%")),
    Job("tune_pce_8_ens5", tune_pce(8, ensemble=5), read_tuned("pce", "%")),
    Job("tune_synthetic_smooth", tune_synthetic(SMOOTH, 8),
        read_tuned("f5_f13", "std. units", "ae2")),
    Job("tune_synthetic_noisy", tune_synthetic(NOISY, 8),
        read_tuned("f5_f13", "std. units", "ae2")),
    Job("demo_splits", demo_splits, read_demo_splits),
    Job("latent_map", latent_map, read_latent_map),
    Job("speed_cpu", lambda quick: [["benchmarks/speed.py", "--quick", "--skip-torch"]],
        read_jsonl(lambda out: out / "stdout.txt", SPEED_PICKS, TIMING)),
    Job("scale_cpu", scale("1000,10000,100000", "1000,10000"), read_scale),
    Job("scale_cpu_1e6", scale("1000,1000000", "1000,20000"), read_scale),
    Job("second_run", lambda quick: [["benchmarks/second_run.py", *(
        ["--set", f"atomic.training.epochs={QUICK_EPOCHS}"] if quick else [])]],
        read_second_run),
    Job("campaign_speed", campaign_speed, read_campaign_speed),
    Job("datasets", lambda quick: [["experiments/dataset_facts.py"]], read_dataset_facts),
    Job("cited", lambda quick: [], read_cited, source=CITED),
    Job("gpu_h200_speed", lambda quick: [],
        read_jsonl(lambda _out: ROOT / GPU_SPEED, GPU_SPEED_PICKS), source=GPU_SPEED),
    Job("gpu_h200_tests_default_precision", lambda quick: [],
        read_stored_pytest("benchmarks/results/gpu_h200_tests_default_precision.txt"),
        source="benchmarks/results/gpu_h200_tests_default_precision.txt"),
]}
