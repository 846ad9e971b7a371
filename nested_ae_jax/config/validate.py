"""Cross-field validation: heads name existing inputs, latents name earlier scales, chain
settings agree with the scales' folds."""

from __future__ import annotations

from ..errors import ConfigError, did_you_mean
from .schema import Config


def validate(cfg: Config, src: str) -> None:
    """Cross-references: heads name existing inputs, links name earlier scales, no cycles."""
    seen: list[str] = []
    for s in cfg.scales:
        where = f"{src}: scales.{s.name}"
        groups = {g.name: g for g in s.inputs}
        for g in s.inputs:
            w = f"{where}.inputs.{g.name}"
            if g.kind == "numeric" and not g.columns:
                raise ConfigError(f"{w}: a numeric group needs 'columns'")
            if g.kind == "categorical" and not g.column:
                raise ConfigError(f"{w}: a categorical group needs 'column'")
            if g.kind == "latent":
                if g.scale == s.name:
                    raise ConfigError(f"{w}: a scale cannot take its own latent (cycle)")
                if g.scale not in [x.name for x in cfg.scales]:
                    raise ConfigError(f"{w}.scale = '{g.scale}' is not a scale of this config"
                                      f"{did_you_mean(g.scale, [x.name for x in cfg.scales])}")
                if g.scale not in seen:
                    raise ConfigError(f"{w}.scale = '{g.scale}': scales must come after the "
                                      "scales they take latents from (cycle or wrong order)")
        input_columns = {c for g in s.inputs for c in (*g.columns, g.column) if c}
        for h in s.heads:
            w = f"{where}.heads.{h.name}"
            leak = sorted(input_columns & set(h.target))
            if leak:
                raise ConfigError(f"{w}.target: column '{leak[0]}' is also an encoder input "
                                  "(the head would see its own answer); remove it from the "
                                  "inputs or use a reconstruction/categorical head on it")
            if h.kind == "regression" and not h.target:
                raise ConfigError(f"{w}: a regression head needs 'target' column(s)")
            if h.kind in ("reconstruction", "categorical") and h.input:
                if h.input not in groups:
                    raise ConfigError(f"{w}.input = '{h.input}' is not an input group of "
                                      f"scale '{s.name}'{did_you_mean(h.input, groups)}")
                want = ("categorical",) if h.kind == "categorical" else ("numeric", "latent")
                if groups[h.input].kind not in want:
                    raise ConfigError(f"{w}: a {h.kind} head cannot reconstruct the "
                                      f"{groups[h.input].kind} group '{h.input}'")
            if h.kind == "reconstruction" and not h.input:
                raise ConfigError(f"{w}: a reconstruction head needs 'input'")
            if h.kind == "categorical" and not (h.input or len(h.target) == 1):
                raise ConfigError(f"{w}: a categorical head needs 'input' or one 'target'")
            if h.kind == "categorical" and h.loss_name != "cross_entropy":
                raise ConfigError(f"{w}.loss: categorical heads use cross_entropy")
            if h.kind != "categorical" and h.loss_name == "cross_entropy":
                raise ConfigError(f"{w}.loss: cross_entropy is for categorical heads")
        if s.cv.kind == "stratified" and not (s.cv.stratify_on or any(
                h.kind == "regression" for h in s.heads)):
            raise ConfigError(f"{where}.cv: stratified needs stratify_on or a regression head")
        seen.append(s.name)
    names = [s.name for s in cfg.scales]
    for key, _ in cfg.chain.finetune_weights:
        if key not in names:
            raise ConfigError(f"{src}: chain.finetune_weights names unknown scale '{key}'"
                              f"{did_you_mean(key, names)}")
    if cfg.chain.split == "matched" and cfg.chain.feed != "fold":
        raise ConfigError(f"{src}: chain.feed = {cfg.chain.feed} needs chain.split = "
                          "\"independent\" (with matched folds the upstream model of fold k "
                          "feeds fold k; an all-rows or fold-mean latent would leak)")
    if cfg.chain.feed != "fold" and cfg.chain.feed_fold != 0:
        raise ConfigError(f"{src}: chain.feed_fold = {cfg.chain.feed_fold} has no effect with "
                          f"chain.feed = \"{cfg.chain.feed}\" (it picks the feeding fold of "
                          "feed = \"fold\"); remove it")
    if cfg.chain.split == "matched":
        linked = [s for s in cfg.scales if s.upstream or any(
            s.name in x.upstream for x in cfg.scales)]
        splits = {s.cv.n_splits for s in linked if s.cv.kind != "none"}
        if len(splits) > 1:
            raise ConfigError(f"{src}: chain.split = \"matched\" shares folds between the "
                              f"scales, which need the same cv.n_splits (got {sorted(splits)})")
    if cfg.chain.feed == "fold" and cfg.chain.split == "independent":
        for s in cfg.scales:
            if s.name in {u for x in cfg.scales for u in x.upstream} and s.cv.kind != "none" \
                    and cfg.chain.feed_fold >= s.cv.n_splits:
                raise ConfigError(f"{src}: chain.feed_fold = {cfg.chain.feed_fold} but scale "
                                  f"'{s.name}' has {s.cv.n_splits} folds")
