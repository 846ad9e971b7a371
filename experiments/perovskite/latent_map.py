"""Latent map of a chain whose last scale has a 2-D latent (the paper's Fig. of AE2 latents).

Train the 2-D variant and draw its map (writes a full run directory plus the map)::

    .venv/bin/python experiments/perovskite/latent_map.py \
        experiments/perovskite/nested_pce_latent2.toml --out runs/nested_pce_latent2

or map a run trained before (``nested-ae train CONFIG --out DIR``)::

    .venv/bin/python experiments/perovskite/latent_map.py runs/nested_pce_latent2

The map is drawn from ONE cross-validation model of the last scale (``--fold``, default 0;
fold models have different latent coordinates, so they are not mixed) applied to every row of
the last scale's data file, through the trained chain exactly as ``nested-ae predict --fold``
does: panels coloured by the last scale's regression predictions (PCE), the upstream scales'
regression predictions on the same rows (the band gap predicted by AE1 from each device's
composition) and the last scale's categorical inputs (ETL, HTL). Rows in the fold's
validation set are out-of-sample for that model; the others were trained on.
Writes DIR/latent_map.png and DIR/latent_map.csv.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def train(config: str, out: Path, data_root: str | None, epochs: int | None,
          overwrite: bool) -> Path:
    from nested_ae_jax import store
    from nested_ae_jax.cli.progress import metrics_table
    from nested_ae_jax.compare.configs import with_epochs
    from nested_ae_jax.reports import metrics_document
    from nested_ae_jax.config import load_config
    from nested_ae_jax.runner import fit_config

    cfg = with_epochs(load_config(config), epochs)
    out = store.prepare_out_dir(out, overwrite=overwrite)
    resolved = store.resolved_config(cfg, data_root)
    fit = fit_config(resolved, data_root=data_root,
                     progress=lambda line: print(line, file=sys.stderr, flush=True))
    store.write_run(fit, out, data_root)
    print(metrics_table(metrics_document(fit), cfg))
    print(f"trained in {fit.seconds:.1f} s; run directory {out}")
    return out


def latent_map(run_dir: Path, out: Path, fold: int = 0) -> Path:
    from nested_ae_jax import io, plots
    from nested_ae_jax.data import read_table
    from nested_ae_jax.errors import NestedAEError
    from nested_ae_jax.chain import load

    run = load(run_dir)
    cfg = run.config
    target = cfg.scales[-1]
    if target.encoder.latent_size != 2:
        raise NestedAEError(f"scale '{target.name}' has a {target.encoder.latent_size}-D latent; "
                            "a latent map needs latent_size = 2 (see nested_pce_latent2.toml)")
    frame = read_table(target.data, target.column_names)
    pred = run.predict(frame, fold=fold, source=target.data)
    latent = pred[[f"{target.name}.latent_0", f"{target.name}.latent_1"]].to_numpy()
    colour_by: dict[str, np.ndarray] = {}
    for h in target.heads:
        if h.kind == "regression":
            colour_by[f"predicted {h.name}"] = pred[f"{target.name}.{h.name}"].to_numpy()
    for s in cfg.scales[:-1]:
        for h in s.heads:
            col = f"{s.name}.{h.name}"
            if h.kind == "regression" and col in pred.columns:
                colour_by[f"predicted {h.name} ({s.name} scale)"] = pred[col].to_numpy()
    for g in target.inputs:
        if g.kind == "categorical":
            colour_by[g.column] = frame[g.column].astype(str).to_numpy()
    fig = plots.latent_map_figure(
        latent, colour_by, title=f"scale '{target.name}' 2-D latent, fold {fold} model, "
        f"{len(frame)} rows")
    out.mkdir(parents=True, exist_ok=True)
    png = out / "latent_map.png"
    io.atomic_savefig(png, fig)
    table = pred.copy()
    for name, values in colour_by.items():
        if name in frame.columns:
            table[name] = values
    for h in target.heads:
        if h.kind == "regression":
            for col in h.target:
                table[f"{col} (data)"] = frame[col].to_numpy()
    table["validation_row_of_this_fold"] = run.trained[target.name].fold_of_row == fold
    io.atomic_write_csv(out / "latent_map.csv", table)
    return png


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("source", help="a TOML config to train, or a run directory to map")
    p.add_argument("--out", help="run directory to write (with a config; default "
                   "runs/<config name>) / folder for the map (with a run; default the run)")
    p.add_argument("--data-root", help="folder for relative data paths (else $NESTED_AE_DATA)")
    p.add_argument("--epochs", type=int, help="override every scale's epochs (quick runs)")
    p.add_argument("--fold", type=int, default=0, help="which fold model draws the map")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    args = p.parse_args(argv)
    from nested_ae_jax.errors import NestedAEError

    try:
        src = Path(args.source)
        if src.is_file():
            run_dir = train(str(src), Path(args.out or f"runs/{src.stem}"), args.data_root,
                            args.epochs, args.overwrite)
            out = run_dir
        else:
            run_dir, out = src, Path(args.out or src)
        png = latent_map(run_dir, out, args.fold)
    except NestedAEError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {png} and {png.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
