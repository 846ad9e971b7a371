"""``nested-ae train CONFIG --out DIR``: cross-validate every scale, write a run directory."""

from __future__ import annotations

import sys
from pathlib import Path

from .progress import metrics_table, printer, settings


def add_parser(sub):
    p = sub.add_parser("train", help="cross-validate the scales of a TOML config")
    p.add_argument("config", help="TOML config file")
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--data-root", help="folder for relative data paths (else $NESTED_AE_DATA, "
                   "else the config's folder)")
    p.add_argument("--resume", action="store_true",
                   help="continue a killed run in --out from its last checkpoint")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="change a config setting, e.g. atomic.training.epochs=100 (repeatable)")
    p.add_argument("--ensemble", type=int, help="models per fold (seeds seed..seed+N-1) in "
                   "every scale; predictions are their mean")
    return p


def train_and_write(cfg, out: Path, *, data_root=None, overwrite=False, resume=False,
                    quiet=False) -> int:
    """Train ``cfg`` into run directory ``out`` (checkpoints as it goes) and print metrics."""
    from .. import store
    from ..reports import metrics_document
    from ..runner import fit_config

    progress = printer(quiet)
    out = store.prepare_out_dir(out, overwrite=overwrite, resume=resume)
    warm = _warm_up_figures()
    resolved = store.resolved_config(cfg, data_root, out)
    states = store.resume_states(out, resolved) if resume else None
    if states and progress:
        progress("resuming: " + ", ".join(f"{k} at epoch {int(v[0].epoch.max())}"
                                          for k, v in states.items()))
    fit = fit_config(resolved, data_root=data_root, progress=progress,
                     on_chunk=store.periodic_saver(out, resolved), resume=states)
    warm.join()  # never two threads drawing at once
    store.write_run(fit, out, data_root)
    print(metrics_table(metrics_document(fit), cfg))
    for line in leak_warnings(fit.leaks):
        print(line, file=sys.stderr)
    if fit.finetuned:
        print("predict, design, explain and suggest use the jointly fine-tuned chain of this "
              "run (--stage sequential: the sequentially trained models)", file=sys.stderr)
    print(f"wall time {fit.seconds:.1f} s; run directory {out}")
    return 0


def _warm_up_figures():
    """A started thread running ``plots.warm_up`` while the fit runs: compiled training
    leaves the interpreter idle, so the run directory's figures cost about 1 s less at the
    end. Join it before drawing. A failure there is left to the figures themselves."""
    import threading

    def warm_up():
        try:
            from .. import plots

            plots.warm_up()
        except Exception:  # noqa: BLE001 - write_run draws again and reports the error
            pass

    thread = threading.Thread(target=warm_up, daemon=True)
    thread.start()
    return thread


def leak_warnings(chain: dict | None) -> list[str]:
    """One warning line per scale whose validation rows got latents from upstream models
    that trained on the same entity (see links.py)."""
    lines = []
    for name, entry in ((chain or {}).get("scales") or {}).items():
        if entry["leaky_val_rows"]:
            lines.append(f"warning: {entry['leaky_val_rows']} of {entry['val_rows']} validation "
                         f"rows of scale '{name}' got their latent from an upstream model "
                         f"trained on the same entity (chain.split = {chain['split']}); their "
                         "errors are optimistic. chain.split = \"matched\" holds every entity "
                         "out of every scale at once")
    return lines


def run(args) -> int:
    from ..config import load_config

    cfg = settings(load_config(args.config), args)
    return train_and_write(cfg, Path(args.out), data_root=args.data_root,
                           overwrite=args.overwrite, resume=args.resume, quiet=args.quiet)
