"""Every figure the pages quote (README.md, experiments/**/README.md, benchmarks/README.md,
docs/*.md) is a line of experiments/results.json, within its stated noise; fully-marked tables
carry no unmarked number. Reads files only (docs/reproducibility.md)."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("reproduce", ROOT / "experiments" / "reproduce.py")
reproduce = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reproduce)


def entry(value, noise=0.0, quick=False):
    return {"value": value, "noise": noise, "quick": quick}


def test_every_quoted_figure_is_in_the_results_file_within_its_noise():
    figures = reproduce.read_results(reproduce.RESULTS)
    problems = reproduce.check_pages(figures)
    assert not problems, "\n".join(problems)


def test_the_pages_quote_figures():
    names = {q.name for p in reproduce.page_files()
             for q in reproduce.quotes(str(p), p.read_text())}
    assert {"ae1.mae", "chain_paper.pce_mae", "chain_honest.pce_mae"} <= names


def test_a_quoted_figure_that_differs_fails_and_one_within_its_noise_passes(tmp_path):
    (tmp_path / "README.md").write_text("MAE 0.165<!--fig:a.mae--> eV, RMSE 0.26<!--fig:a.rmse-->")
    figs = {"a.mae": entry(0.1652, 0.0), "a.rmse": entry(0.2649, 0.0)}
    assert reproduce.check_pages(figs, tmp_path) == []
    figs["a.mae"] = entry(0.1700, 0.002)                      # 0.005 off, noise 0.002
    [problem] = reproduce.check_pages(figs, tmp_path)
    assert "README.md:1: 0.165 (a.mae)" in problem
    figs["a.mae"] = entry(0.1670, 0.002)                      # within noise + half a digit
    assert reproduce.check_pages(figs, tmp_path) == []


def test_missing_and_quick_entries_fail(tmp_path):
    (tmp_path / "README.md").write_text("x 1,234<!--fig:b.n--> and 2.5<!--fig:b.none-->")
    problems = reproduce.check_pages({"b.n": entry(1234, quick=True)}, tmp_path)
    assert len(problems) == 2
    assert "--quick" in problems[0] and "not in the results file" in problems[1]


def test_a_fully_marked_table_refuses_an_unmarked_number(tmp_path):
    table = ("<!--figs:table-->\n| quantity | ours | paper |\n|---|---|---|\n"
             "| MAE at 1500 epochs | 0.165<!--fig:a.mae--> | 0.168 |\n"
             "| RMSE | 0.26<!--fig:a.rmse--> / 0.95 | 0.23 |\n")
    (tmp_path / "README.md").write_text(table)
    problems = reproduce.check_pages({"a.mae": entry(0.165), "a.rmse": entry(0.26)}, tmp_path)
    assert problems == ["README.md:5: unmarked number '0.95' in a fully-marked table"]


def test_unknown_job_and_unreadable_results_file_are_one_line_errors(tmp_path):
    with pytest.raises(reproduce.ReproduceError, match="unknown figure job nope"):
        reproduce.select(["nope"])
    bad = tmp_path / "r.json"
    bad.write_text("{not json")
    with pytest.raises(reproduce.ReproduceError, match="not a results file"):
        reproduce.read_results(bad)


def test_quick_run_of_one_stored_figure_writes_a_valid_entry_and_merges(tmp_path):
    out = tmp_path / "results.json"
    reproduce.write_results(out, {"other.x": {"value": 1.0}})
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "reproduce.py"), "--quick",
                           "--only", "gpu_h200_tests_default_precision", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(out.read_text())["figures"]
    assert "other.x" in figures
    e = figures["gpu_h200_tests_default_precision.failed"]
    assert set(e) == set(reproduce.Figure._fields)
    assert e["quick"] is True and e["source"].endswith(".txt") and e["value"] >= 0
    assert {"jax", "flax", "optax", "numpy", "python"} <= set(e["versions"])


def test_update_prints_marked_figures_from_the_results_at_their_precision():
    text = "MAE 0.165<!--fig:a.mae--> and 60,588<!--fig:a.n--> and 3.2<!--fig:a.q-->"
    figs = {"a.mae": entry(0.1712), "a.n": entry(61234.4), "a.q": entry(9.0, quick=True)}
    new, changes = reproduce.update_text("P.md", text, figs)
    assert new == "MAE 0.171<!--fig:a.mae--> and 61,234<!--fig:a.n--> and 3.2<!--fig:a.q-->"
    assert changes == ["P.md:1: a.mae 0.165 -> 0.171", "P.md:1: a.n 60,588 -> 61,234"]


def test_a_range_of_two_marked_figures_keeps_its_dash():
    text = "between 7<!--fig:a.low-->-8<!--fig:a.high--> min, and -0.02<!--fig:a.neg--> eV"
    assert [q.text for q in reproduce.quotes("P.md", text)] == ["7", "8", "-0.02"]
    figs = {"a.low": entry(6.0), "a.high": entry(9.0), "a.neg": entry(-0.03)}
    new, _ = reproduce.update_text("P.md", text, figs)
    assert new == "between 6<!--fig:a.low-->-9<!--fig:a.high--> min, and -0.03<!--fig:a.neg--> eV"
