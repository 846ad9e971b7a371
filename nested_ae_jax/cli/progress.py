"""What every command prints: progress lines on stderr, tables on stdout."""

from __future__ import annotations

import sys
from typing import Callable


def printer(quiet: bool = False) -> Callable[[str], None] | None:
    """The progress printer of a command (one line at a time, to stderr), None when quiet."""
    if quiet:
        return None
    return lambda line: print(line, file=sys.stderr, flush=True)


def metrics_table(doc: dict, config=None) -> str:
    """Pooled out-of-fold metrics of every head, with the config's reference figures."""
    refs = {}
    if config is not None:
        refs = {(s.name, h.name): dict(h.reference) for s in config.scales for h in s.heads}
    lines = [f"{'scale.head':28s} {'metric':14s} {'ours':>10s} {'reference':>10s}  fold range"]
    for scale, entry in doc["scales"].items():
        for head, m in entry["heads"].items():
            pooled = m.get("pooled_val") or m.get("pooled_train_mean") or {}
            where = "" if "pooled_val" in m else " (train)"
            for key in ("mae", "rmse", "r2", "accuracy", "cross_entropy"):
                if key not in pooled:
                    continue
                ref = refs.get((scale, head), {}).get(key)
                folds = [f["val"][head][key] for f in entry["folds"] if head in f["val"]]
                span = f"{min(folds):.4g}-{max(folds):.4g}" if folds else ""
                lines.append(f"{scale + '.' + head:28s} {key + where:14s} {pooled[key]:10.4f} "
                             f"{'' if ref is None else f'{ref:.4g}':>10s}  {span}")
    return "\n".join(lines)


def settings(cfg, args):
    """The config with --set KEY=VALUE and --ensemble N applied (validated again)."""
    from ..config import override, parse_value
    from ..errors import ConfigError

    values = {}
    for item in getattr(args, "set", None) or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. "
                              "atomic.training.epochs=100")
        values[key.strip()] = parse_value(value.strip())
    if getattr(args, "ensemble", None):
        values.update({f"{s.name}.training.ensemble": args.ensemble for s in cfg.scales})
    return override(cfg, values) if values else cfg


def add_stage_option(p) -> None:
    """``--stage``: which parameters of a fine-tuned run a command uses."""
    p.add_argument("--stage", choices=("finetuned", "sequential"),
                   help="parameters to use: the jointly fine-tuned chain (the default when the "
                   "run was fine-tuned, chain.finetune_epochs > 0) or the sequentially trained "
                   "models")


def load_chain(args):
    """The TrainedChain of ``args.run_dir`` at ``args.stage``."""
    from ..chain import load

    return load(args.run_dir, stage=getattr(args, "stage", None))


def say_stage(chain) -> None:
    """The line every command that uses a trained run ends with on stderr: which stage (after
    the work, so that an error stays the only line)."""
    print(chain.stage_line(), file=sys.stderr, flush=True)


def trained_stage_note(command: str, cfg) -> None:
    """For commands that train their own chains (compare, campaign): say on stderr that they
    use the sequentially trained models."""
    tuned = cfg.chain.finetune_epochs > 0 and len(cfg.scales) > 1
    print(f"{command}: using the sequentially trained models"
          + (" (chain.finetune_epochs is not used here)" if tuned else ""),
          file=sys.stderr, flush=True)
