"""Gradient-based inverse design through a trained chain: ``nested-ae design``.

The chain is differentiable from composition to device property. Design variables are the
site fractions of an ABX3 composition (each site on its simplex, a masked softmax of free
logits) and the categorical inputs of every scale (ETL, HTL: all combinations enumerated, the
starts spread over them round-robin). Composition -> descriptors by the per-ion table of
:mod:`.composition`; descriptors -> every scale's heads by the trained chain applied exactly as
``predict`` applies it (upstream scales through the feeding model, the target scale's fold
models as an ensemble: mean, and std reported as ``SCALE.HEAD.std``).

Many starts run at once: the per-start loss and gradient are vmapped, Adam (optax) steps them
in one jit-compiled ``lax.scan``. Constraints are soft penalties during the run (quadratic, in
units of each head's spread over the random starting population, weight ramped 10 -> 1e4,
with a small margin inside the bound) and hard checks on the returned table (``feasible``).
Excluded ions get -inf logits (exactly 0); fixed sites are one-hot. After 50, 80 and 95 % of
the steps each start's support is pruned (ions under 1 % dropped and, with a cap on ions per
site, all but the largest ``cap`` of each site) and the run goes on on that support. At the
end, fractions under 0.01 are zeroed, sites renormalised and the cleaned compositions
re-evaluated, so every reported number belongs to the reported fractions.

Baselines: :func:`random_search` (random compositions and device choices, as many model
evaluations as the gradient run) and :func:`latent_sampling` (the later work's approach:
random latents of the composition scale within its training range, decoded by the heads; the
best are decoded to compositions by the reconstruction head and a simplex projection, then
re-evaluated honestly). :func:`pareto_front`: epsilon-constraint runs over bands of one head.
"""

from __future__ import annotations

import itertools
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from . import nesting, trained
from .composition import BANDGAP_FILE, CompositionSpace, load_space
from .errors import NestedAEError, did_you_mean
from .evaluation import safe_std
from .model import apply_heads

SNAP = 0.01  # fractions below this are zeroed at the end (1 % resolution)
DEDUPE = 0.05  # candidates whose fractions round to the same multiple of this are one
MARGIN = 0.01  # soft constraints aim this far inside a bound (units of the head's spread)
RHO = (10.0, 1e4)  # penalty weight at the first and last step (geometric ramp)
PRUNE = (0.5, 0.8, 0.95)  # where the support is pruned (share of the steps done)
KINDS = {"max": 0, "min": 1, "target": 2}
MAX_TERMS = 8  # objective terms (padded: one compiled program for any objective)


class DesignError(NestedAEError):
    """A bad design request (unknown head or ion, contradictory constraints)."""


# ----------------------------------------------------------------------------------------------
# Objectives and constraints


@dataclass(frozen=True)
class Objective:
    """One term of the score (higher is better): max -> +w*h, min -> -w*h,
    target -> -w*|h - value|. Weights are in the heads' own units."""

    head: str
    kind: str = "max"
    weight: float = 1.0
    value: float = 0.0


@dataclass(frozen=True)
class Constraint:
    """``lower <= head <= upper`` (either side may be None)."""

    head: str
    lower: float | None = None
    upper: float | None = None

    def __str__(self) -> str:
        lo = "" if self.lower is None else f"{self.lower:g}<="
        hi = "" if self.upper is None else f"<={self.upper:g}"
        return f"{lo}{self.head}{hi}"


_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_HEAD = r"[A-Za-z_][\w.\[\]-]*"


def parse_objective(text: str, kind: str = "max") -> Objective:
    """'device.pce', '2*device.pce', 'atomic.gap=1.4' (kind target), 'max:device.pce'."""
    s = text.strip()
    m = re.fullmatch(r"(max|min|target):(.*)", s)
    if m:
        kind, s = m.group(1), m.group(2).strip()
    weight = 1.0
    m = re.fullmatch(rf"({_NUM})\s*\*\s*(.*)", s)
    if m:
        weight, s = float(m.group(1)), m.group(2).strip()
    value = 0.0
    if kind == "target":
        m = re.fullmatch(rf"({_HEAD})\s*=\s*({_NUM})", s)
        if not m:
            raise DesignError(f"--target '{text}': expected HEAD=VALUE, e.g. atomic.gap=1.4")
        s, value = m.group(1), float(m.group(2))
    if not re.fullmatch(_HEAD, s) or kind not in KINDS:
        raise DesignError(f"objective '{text}': expected [WEIGHT*]SCALE.HEAD, e.g. device.pce")
    if not weight > 0:
        raise DesignError(f"objective '{text}': the weight must be > 0")
    return Objective(s, kind, weight, value)


def parse_constraint(text: str) -> Constraint:
    """'atomic.gap>=1.2', 'atomic.gap<=1.6', '1.2<=atomic.gap<=1.6' ('>' reads as '>=')."""
    s = text.replace(" ", "")
    m = re.fullmatch(rf"({_NUM})<=?({_HEAD})<=?({_NUM})", s)
    if m:
        return _checked(Constraint(m.group(2), float(m.group(1)), float(m.group(3))), text)
    m = re.fullmatch(rf"({_HEAD})(>=|<=|>|<|=)({_NUM})", s)
    if m:
        head, op, v = m.group(1), m.group(2), float(m.group(3))
        c = Constraint(head, lower=v if op in (">=", ">", "=") else None,
                       upper=v if op in ("<=", "<", "=") else None)
        return _checked(c, text)
    raise DesignError(f"constraint '{text}': expected SCALE.HEAD>=VALUE, SCALE.HEAD<=VALUE or "
                      "LOW<=SCALE.HEAD<=HIGH")


def _checked(c: Constraint, text: str) -> Constraint:
    if c.lower is not None and c.upper is not None and c.lower > c.upper:
        raise DesignError(f"constraint '{text}': lower bound above upper bound")
    return c


def _objectives(objective: Any) -> list[Objective]:
    if objective is None:
        raise DesignError("no objective: give --maximize, --minimize or --target")
    if isinstance(objective, (str, Objective)):
        objective = [objective]
    out = [o if isinstance(o, Objective) else parse_objective(o) for o in objective]
    if not out:
        raise DesignError("no objective: give --maximize, --minimize or --target")
    return out


def _constraints(constraints: Any) -> list[Constraint]:
    if constraints is None:
        return []
    if isinstance(constraints, (str, Constraint)):
        constraints = [constraints]
    return [c if isinstance(c, Constraint) else parse_constraint(c) for c in constraints]


# ----------------------------------------------------------------------------------------------
# The differentiable chain: fractions + categorical codes -> heads


class Designer:
    """A trained run made ready for design: the chain as one function of (fractions, device
    choices), its head names, the design variables and the reference data for the
    out-of-domain score. Build once and pass it to :func:`design` & co. to reuse compiled code.
    """

    def __init__(self, run, space: CompositionSpace | None = None, *,
                 reference: bool = True) -> None:
        cfg = run.config
        self.run = run
        self.target = cfg.scales[-1].name
        specs = {s.name: s for s in cfg.scales}
        self.specs = specs
        self.upto = [*nesting.upstream_of(cfg, self.target), self.target]
        loaded = run.scales
        self.space = space if space is not None else _space_of_run(run, self.upto)

        # one chain copy per target model, each fed as in training (trained.chain_copies:
        # the path predict uses, so design and predict agree)
        tgt = loaded[self.target]
        self.chain, copies = trained.chain_copies(loaded, self.target, tgt.models())
        if cfg.chain.transfer_scaler == "refit":  # the defect: upstream scalers re-fitted
            frame, source = self._target_frame()
            rows = nesting.chain_inputs({n: specs[n] for n in self.upto},
                                        {n: loaded[n].categories for n in self.upto},
                                        frame, self.target, source)
            copies = trained.refit_upstream(cfg.chain, self.chain, copies, rows,
                                            list(tgt.feeders))
        self.tmodel = tgt.model
        self.n_models = len(tgt.models())
        self.params = {"chain": copies}

        # composition groups: every numeric input group of every scale
        self.groups: list[tuple[str, str, tuple[str, ...]]] = []
        weights = {}
        for s in self.upto:
            for g in specs[s].inputs:
                if g.kind != "numeric":
                    continue
                bad = [c for c in g.columns if not self.space.covers(c)]
                if bad:
                    raise DesignError(
                        f"design: input column '{bad[0]}' of scale '{s}' is not a composition "
                        f"descriptor SITE_PROPERTY of the ion table (sites "
                        f"{list(self.space.site_names)}); only composition inputs can be "
                        "designed")
                self.groups.append((s, g.name, tuple(g.columns)))
                weights[f"{s}/{g.name}"] = jnp.asarray(self.space.weights(g.columns),
                                                       jnp.float32)
        if not self.groups:
            raise DesignError("design: no scale of the chain takes composition descriptors")
        self.params["W"] = weights

        # categorical design choices
        self.cats: list[tuple[str, str, str, tuple[str, ...]]] = []
        for s in self.upto:
            for g in specs[s].inputs:
                if g.kind == "categorical":
                    self.cats.append((s, g.name, g.column, loaded[s].categories.groups[g.name]))

        # heads: regression heads of every scale, plus .std of the target's
        self.heads: list[str] = []
        self._head_src: list[tuple[str, str, int, bool]] = []
        for s in self.upto:
            for h in specs[s].heads:
                if h.kind != "regression":
                    continue
                names = [h.name] if len(h.target) == 1 else [f"{h.name}[{t}]" for t in h.target]
                for j, nm in enumerate(names):
                    self.heads.append(f"{s}.{nm}")
                    self._head_src.append((s, h.name, j, False))
        if self.n_models > 1:
            for s, h, j, _ in list(self._head_src):
                if s == self.target:
                    nm = self.heads[self._head_src.index((s, h, j, False))]
                    self.heads.append(f"{nm}.std")
                    self._head_src.append((s, h, j, True))
        self.recon_scales = [s for s in self.upto if any(
            h.kind == "reconstruction" for h in specs[s].heads)]

        self._eval = jax.jit(self._forward)
        self._opt_cache: dict = {}
        self.reference = self._reference() if reference else {}

    # -- the forward function ------------------------------------------------------------------

    def _inputs(self, params: dict, fractions: jax.Array, codes: jax.Array) -> dict:
        inputs: dict[str, dict] = {s: {} for s in self.upto}
        for s, g, _ in self.groups:
            inputs[s][g] = fractions @ params["W"][f"{s}/{g}"]
        for k, (s, g, _, _) in enumerate(self.cats):
            inputs[s][g] = codes[:, k]
        return inputs

    def _forward_inputs(self, params: dict, inputs: dict) -> tuple[jax.Array, jax.Array]:
        """Raw inputs of every scale -> (heads (N, n_heads), reconstruction MAE (N, n_rec)):
        heads averaged over the chain copies (``.std``: their spread), reconstruction errors
        averaged over the copies."""
        outs = trained.apply_copies(self.chain, params["chain"], inputs)
        summary = trained.summarise(self.chain, outs)
        cols = []
        for s, h, j, is_std in self._head_src:
            mean, std = summary[s]
            cols.append(std[h][:, j] if is_std else mean.heads[h][:, j])
        rec = []
        for s in self.recon_scales:
            o = outs[s]
            errs = [jnp.abs(o.heads[h.name] - o.features[h.input]).mean(axis=-1)
                    for h in self.specs[s].heads if h.kind == "reconstruction"]
            rec.append((sum(errs) / len(errs)).mean(axis=0))
        n = next(iter(jax.tree.leaves(inputs)))
        return jnp.stack(cols, -1), (jnp.stack(rec, -1) if rec else jnp.zeros((n.shape[0], 0)))

    def _forward(self, params: dict, fractions: jax.Array, codes: jax.Array):
        return self._forward_inputs(params, self._inputs(params, fractions, codes))

    def evaluate(self, fractions: np.ndarray, codes: np.ndarray, chunk: int = 32768
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Heads (N, n_heads) and reconstruction errors (N, n_rec) of compositions and
        device-choice codes, in chunks of a fixed size (one compilation)."""
        n = len(fractions)
        f = np.asarray(fractions, np.float32)
        c = np.asarray(codes, np.int32).reshape(n, len(self.cats))
        size = min(chunk, max(256, 1 << (max(n, 1) - 1).bit_length()))  # few shapes
        heads, recs = [], []
        for i in range(0, n, size):
            fi, ci = f[i:i + size], c[i:i + size]
            pad = size - len(fi)
            if pad:
                fi = np.concatenate([fi, np.repeat(fi[:1], pad, 0)])
                ci = np.concatenate([ci, np.repeat(ci[:1], pad, 0)])
            h, r = self._eval(self.params, fi, ci)
            heads.append(np.asarray(h)[:size - pad])
            recs.append(np.asarray(r)[:size - pad])
        return np.concatenate(heads), np.concatenate(recs)

    # -- reference data (out-of-domain score) --------------------------------------------------

    def _target_frame(self):
        from .data import read_table
        path = self.specs[self.target].data
        return read_table(path, self.specs[self.target].column_names), path

    def descriptor_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and scale standardising the concatenated composition descriptors (the scalers
        of the models that read them)."""
        means, scales = [], []
        for s, g, _ in self.groups:
            st = self.params["chain"][s].stats[g]
            m, sc = np.asarray(st["mean"]), np.asarray(st["scale"])
            means.append(m.reshape(-1, m.shape[-1])[0])
            scales.append(sc.reshape(-1, sc.shape[-1])[0])
        return np.concatenate(means), np.concatenate(scales)

    def descriptors(self, fractions: np.ndarray) -> np.ndarray:
        """Standardised composition descriptors (N, D) of compositions."""
        mean, scale = self.descriptor_stats()
        raw = np.concatenate([np.asarray(fractions) @ np.asarray(self.params["W"][f"{s}/{g}"])
                              for s, g, _ in self.groups], axis=1)
        return (raw - mean) / scale

    def _reference(self) -> dict:
        """Per scale: the unique standardised descriptor rows of its training file and the
        95th percentile of their nearest-other-row distance; reconstruction errors of the
        target file's rows (95th percentile per scale)."""
        from .data import read_table
        ref: dict[str, Any] = {"rows": {}, "dist95": {}, "recon95": None}
        mean, scale = self.descriptor_stats()
        cats = {n: self.run.scales[n].categories for n in self.upto}
        for s in self.upto:
            spec = self.specs[s]
            try:
                frame = read_table(spec.data, spec.column_names)
                sub = [*nesting.upstream_of(self.specs, s), s]
                inputs = nesting.chain_inputs({n: self.specs[n] for n in sub},
                                              {n: cats[n] for n in sub}, frame, s, spec.data)
            except NestedAEError as err:
                print(f"design: no out-of-domain reference for scale '{s}': {err}",
                      file=sys.stderr)
                continue
            raw = np.concatenate([np.asarray(inputs[gs][g]) for gs, g, _ in self.groups
                                  if gs in inputs and g in inputs[gs]], axis=1) \
                if all(gs in inputs for gs, _, _ in self.groups) else None
            if raw is None:
                continue
            rows = np.unique(np.round((raw - mean) / scale, 6), axis=0)
            ref["rows"][s] = rows
            d = _nearest(rows, rows, exclude_self=True)
            ref["dist95"][s] = float(np.quantile(d, 0.95)) if len(d) > 1 else float("nan")
            if s == self.target and self.recon_scales:
                inp = {k: {g: jnp.asarray(v) for g, v in grp.items()} for k, grp in inputs.items()}
                _, rec = jax.jit(self._forward_inputs)(self.params, inp)
                ref["recon95"] = np.quantile(np.asarray(rec), 0.95, axis=0)
        return ref

    def ood_columns(self, fractions: np.ndarray, recon: np.ndarray) -> dict[str, np.ndarray]:
        """``ood.distance.S`` (to the nearest training composition of scale S, standardised
        descriptor units), ``ood.recon.S`` (reconstruction MAE, standardised units) and
        ``ood.score`` = the largest of these over its 95th percentile on training rows
        (> 1: further out than 95 % of the training data)."""
        cols: dict[str, np.ndarray] = {}
        ratios = []
        x = self.descriptors(fractions)
        for s, rows in self.reference.get("rows", {}).items():
            d = _nearest(x, rows)
            cols[f"ood.distance.{s}"] = d
            ref = self.reference["dist95"][s]
            if ref and math.isfinite(ref):
                ratios.append(d / ref)
        r95 = self.reference.get("recon95")
        for k, s in enumerate(self.recon_scales):
            cols[f"ood.recon.{s}"] = recon[:, k]
            if r95 is not None and r95[k] > 0:
                ratios.append(recon[:, k] / r95[k])
        if ratios:
            cols["ood.score"] = np.max(np.stack(ratios), axis=0)
        return cols

    # -- design variables ---------------------------------------------------------------------

    def head_index(self, name: str) -> int:
        if name not in self.heads:
            raise DesignError(f"unknown head '{name}'{did_you_mean(name, self.heads)}; "
                              f"heads: {', '.join(self.heads)}")
        return self.heads.index(name)

    def variables(self, exclude: Iterable[str] = (), fix: Any = None,
                  max_ions_per_site: int | None = None) -> "Variables":
        return _variables(self, exclude, fix, max_ions_per_site)


def _nearest(x: np.ndarray, rows: np.ndarray, exclude_self: bool = False,
             chunk: int = 2048) -> np.ndarray:
    out = np.empty(len(x))
    r2 = (rows ** 2).sum(1)
    for i in range(0, len(x), chunk):
        xi = x[i:i + chunk]
        d2 = (xi ** 2).sum(1)[:, None] + r2[None] - 2 * xi @ rows.T
        if exclude_self:
            d2[d2 < 1e-12] = np.inf
        out[i:i + chunk] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def _space_of_run(run, upto: list[str]) -> CompositionSpace:
    """The per-ion table from the first scale's data file that has site-fraction columns,
    else (with a note on stderr) from the shipped band-gap data set."""
    errors = []
    for s in upto:
        try:
            return load_space(run.config.scale(s).data)
        except NestedAEError as err:
            errors.append(f"{s}: {err}")
    print(f"design: per-ion table from the shipped band-gap data set {BANDGAP_FILE} "
          f"({'; '.join(errors)})", file=sys.stderr)
    return load_space(BANDGAP_FILE)


@dataclass
class Variables:
    """What may vary: ``allowed`` (n_ions,) ions allowed (excluded = False, fixed sites one-hot),
    ``combos`` (n_combos, n_cat) allowed device-choice codes, ``cap`` per-site ion limit."""

    allowed: np.ndarray
    combos: np.ndarray
    cap: int | None
    exclude: tuple[str, ...]
    fixed_sites: dict[str, str]


def _parse_fix(fix: Any) -> dict[str, str]:
    if fix is None:
        return {}
    if isinstance(fix, Mapping):
        return {str(k): str(v) for k, v in fix.items()}
    if isinstance(fix, str):
        fix = [fix]
    out = {}
    for item in fix:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip() or not value.strip():
            raise DesignError(f"--fix '{item}': expected SITE=ION (e.g. X=I) or "
                              "COLUMN=CHOICE (e.g. HTL_stack_sequence=PTAA)")
        out[key.strip()] = value.strip()
    return out


def _variables(d: Designer, exclude: Iterable[str], fix: Any, cap: int | None) -> Variables:
    space = d.space
    if isinstance(exclude, str):
        exclude = [exclude]
    exclude = tuple(e.strip() for x in exclude for e in str(x).split(",") if e.strip())
    allowed = np.ones(len(space.ions), bool)
    cat_allowed = [np.ones(len(labels), bool) for *_, labels in d.cats]
    labels_all = [lab for *_, labels in d.cats for lab in labels]
    for e in exclude:
        if e in space.ions:
            allowed[space.ions.index(e)] = False
            continue
        hits = [(k, labels.index(e)) for k, (*_, labels) in enumerate(d.cats) if e in labels]
        if not hits:
            raise DesignError(f"--exclude '{e}': not an ion ({', '.join(space.ions)}) nor a "
                              f"device choice{did_you_mean(e, [*space.ions, *labels_all])}")
        for k, j in hits:
            cat_allowed[k][j] = False
    slices = space.site_slices()
    fixed_sites = {}
    for key, value in _parse_fix(fix).items():
        if key in slices:
            ions = dict(space.sites)[key]
            if value not in ions:
                raise DesignError(f"--fix {key}={value}: site {key} has ions "
                                  f"{', '.join(ions)}{did_you_mean(value, ions)}")
            if not allowed[space.ions.index(value)]:
                raise DesignError(f"--fix {key}={value}: {value} is also excluded")
            allowed[slices[key]] = False
            allowed[space.ions.index(value)] = True
            fixed_sites[key] = value
            continue
        k = next((i for i, (_, g, col, _) in enumerate(d.cats) if key in (g, col)), None)
        if k is None:
            raise DesignError(f"--fix '{key}': not a site ({', '.join(slices)}) nor a device "
                              f"choice column{did_you_mean(key, [c[2] for c in d.cats])}")
        labels = d.cats[k][3]
        if value not in labels:
            raise DesignError(f"--fix {key}={value}: choices are "
                              f"{', '.join(labels)}{did_you_mean(value, labels)}")
        if not cat_allowed[k][labels.index(value)]:
            raise DesignError(f"--fix {key}={value}: {value} is also excluded")
        cat_allowed[k][:] = False
        cat_allowed[k][labels.index(value)] = True
    for site, sl in slices.items():
        if not allowed[sl].any():
            raise DesignError(f"every ion of site {site} is excluded")
    for (_, g, col, _), ok in zip(d.cats, cat_allowed):
        if not ok.any():
            raise DesignError(f"every choice of {col} is excluded")
    if cap is not None and cap < 1:
        raise DesignError("--max-ions-per-site must be >= 1")
    combos = np.array(list(itertools.product(*[np.flatnonzero(ok) for ok in cat_allowed])),
                      np.int32).reshape(-1, len(d.cats)) if d.cats else np.zeros((1, 0), np.int32)
    return Variables(allowed, combos, cap, exclude, fixed_sites)


# ----------------------------------------------------------------------------------------------
# Scores, penalties and the table of candidates


@dataclass
class Problem:
    """Objective and bounds as arrays over the Designer's heads (shapes fixed per request)."""

    obj_index: np.ndarray
    obj_kind: np.ndarray
    obj_weight: np.ndarray
    obj_value: np.ndarray
    lower: np.ndarray  # (n_heads,) -inf where none
    upper: np.ndarray
    objectives: list[Objective]
    constraints: list[Constraint]


def make_problem(d: Designer, objective: Any, constraints: Any) -> Problem:
    objs = _objectives(objective)
    cons = _constraints(constraints)
    lower = np.full(len(d.heads), -np.inf)
    upper = np.full(len(d.heads), np.inf)
    for c in cons:
        i = d.head_index(c.head)
        if c.lower is not None:
            lower[i] = max(lower[i], c.lower)
        if c.upper is not None:
            upper[i] = min(upper[i], c.upper)
        if lower[i] > upper[i]:
            raise DesignError(f"constraints on {c.head} leave no feasible value "
                              f"({lower[i]:g} > {upper[i]:g})")
    return Problem(np.array([d.head_index(o.head) for o in objs], np.int32),
                   np.array([KINDS[o.kind] for o in objs], np.int32),
                   np.array([o.weight for o in objs], np.float32),
                   np.array([o.value for o in objs], np.float32), lower, upper, objs, cons)


def _score(heads, idx, kind, weight, value, xp=jnp):
    h = heads[..., idx]
    soft = xp.sqrt((h - value) ** 2 + 1e-6)
    term = xp.where(kind == 0, h, xp.where(kind == 1, -h, -soft))
    return (weight * term).sum(-1)


def score_np(p: Problem, heads: np.ndarray) -> np.ndarray:
    h = heads[:, p.obj_index].astype(np.float64)
    term = np.where(p.obj_kind == 0, h, np.where(p.obj_kind == 1, -h,
                                                 -np.abs(h - p.obj_value)))
    return (p.obj_weight * term).sum(-1)


def violation_np(p: Problem, heads: np.ndarray) -> np.ndarray:
    """Largest amount by which a bound is missed, in the head's units (0: all hold)."""
    with np.errstate(invalid="ignore"):
        v = np.maximum(np.maximum(p.lower - heads, heads - p.upper), 0.0)
    return np.nan_to_num(v, nan=np.inf).max(axis=-1) if v.shape[-1] else np.zeros(len(heads))


def _ranking_key(p: Problem, heads: np.ndarray) -> np.ndarray:
    """Feasible candidates by score, then infeasible ones by how far they miss (smaller
    first); non-finite last."""
    viol = violation_np(p, heads)
    key = np.where(viol == 0, score_np(p, heads), -1e30 - viol)
    return np.where(np.isfinite(heads).all(1) & np.isfinite(key), key, -np.inf)


def _clean(fractions: np.ndarray, space: CompositionSpace) -> np.ndarray:
    f = np.asarray(fractions, np.float64).copy()
    f[f < SNAP] = 0.0
    for sl in space.site_slices().values():
        f[:, sl] /= f[:, sl].sum(axis=1, keepdims=True)
    return f


def candidate_table(d: Designer, p: Problem, v: Variables, fractions: np.ndarray,
                    codes: np.ndarray, extra: dict | None = None, dedupe: bool = True,
                    evaluated: tuple[np.ndarray, np.ndarray] | None = None) -> pd.DataFrame:
    """Clean, re-evaluate, hard-check, de-duplicate and rank compositions; one row each.
    ``evaluated``: heads and reconstruction errors of already cleaned ``fractions``."""
    space = d.space
    f = _clean(fractions, space)
    heads, recon = d.evaluate(f, codes) if evaluated is None else evaluated
    score = score_np(p, heads)
    viol = violation_np(p, heads)
    slices = space.site_slices()
    sums_ok = np.all([np.abs(f[:, sl].sum(1) - 1) <= 1e-6 for sl in slices.values()], axis=0)
    excl_ok = (f[:, ~v.allowed] == 0).all(axis=1) if (~v.allowed).any() else \
        np.ones(len(f), bool)
    cap_ok = np.ones(len(f), bool)
    if v.cap is not None:
        for sl in slices.values():
            cap_ok &= (f[:, sl] > 0).sum(1) <= v.cap
    combo_ok = (codes[:, None, :] == v.combos[None]).all(-1).any(-1) if len(d.cats) else \
        np.ones(len(f), bool)
    finite = np.isfinite(heads).all(axis=1)
    feasible = (viol == 0) & sums_ok & excl_ok & cap_ok & combo_ok & finite

    cols: dict[str, Any] = {"rank": 0, "formula": [space.formula(x) for x in f]}
    for j, ion in enumerate(space.ions):
        cols[ion] = f[:, j]
    for k, (_, _, col, labels) in enumerate(d.cats):
        cols[col] = np.array(labels, dtype=object)[codes[:, k]]
    for j, name in enumerate(d.heads):
        cols[name] = heads[:, j].astype(np.float64)
    cols["score"] = score
    cols.update(d.ood_columns(f, recon))
    cols["violation"] = viol
    cols["feasible"] = feasible
    if extra:
        cols.update(extra)
    table = pd.DataFrame(cols)
    table["_key"] = [tuple(np.round(x / DEDUPE).astype(int)) + tuple(c)
                     for x, c in zip(f, codes)]
    table = table.sort_values(["feasible", "score"], ascending=[False, False], kind="stable")
    if dedupe:
        table = table.drop_duplicates("_key", keep="first")
    table = table.drop(columns="_key").reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    return table


# ----------------------------------------------------------------------------------------------
# The optimiser


def _masked_softmax(logits: jax.Array, mask: jax.Array, slices: list[slice]) -> jax.Array:
    parts = [jax.nn.softmax(jnp.where(mask[..., sl], logits[..., sl], -jnp.inf), axis=-1)
             for sl in slices]
    return jnp.concatenate(parts, axis=-1)


def _top_k_mask(fractions: jax.Array, mask: jax.Array, slices: list[slice], k) -> jax.Array:
    """``mask`` keeping, per site, only the ``k`` largest allowed fractions (ties: first
    ion); ``k`` may be traced."""
    parts = []
    for sl in slices:
        f = jnp.where(mask[..., sl], fractions[..., sl], -1.0)
        n = f.shape[-1]
        fi, fj = f[..., :, None], f[..., None, :]
        earlier = jnp.arange(n)[None, :] < jnp.arange(n)[:, None]
        rank = ((fj > fi) | ((fj == fi) & earlier)).sum(-1)
        parts.append(mask[..., sl] & (rank < k))
    return jnp.concatenate(parts, axis=-1)


def _optimiser(d: Designer, steps: int, lr: float):
    """The multi-start run, jit-compiled (cached per steps/lr on the Designer).

    At the steps given by :data:`PRUNE` every start's support is pruned: ions under
    :data:`SNAP` and all but the ``cap`` largest of each site get -inf logits (exactly 0 from
    then on), so the returned compositions are optimised on the support they are reported
    with. ``cap`` is an argument (no recompilation per cap)."""
    key = (steps, lr)
    if key in d._opt_cache:
        return d._opt_cache[key]
    slices = list(d.space.site_slices().values())
    sched = optax.cosine_decay_schedule(lr, max(steps, 1), alpha=0.02)
    opt = optax.adam(sched)
    prune_at = jnp.asarray(sorted({int(round(steps * q)) for q in PRUNE} - {0}), jnp.int32)

    def loss_one(logits, mask, code, lo, hi, prob, scales, rho):
        f = _masked_softmax(logits, mask, slices)[None]
        heads, _ = d._forward(prob["params"], f, code[None])
        heads = heads[0]
        score = _score(heads, prob["idx"], prob["kind"], prob["weight"], prob["value"])
        s = scales["heads"]
        below = jnp.where(jnp.isfinite(lo), jax.nn.relu((lo - heads) / s + MARGIN), 0.0)
        above = jnp.where(jnp.isfinite(hi), jax.nn.relu((heads - hi) / s + MARGIN), 0.0)
        pen = (below ** 2 + above ** 2).sum()
        return -score / scales["score"] + rho * pen

    grad_all = jax.vmap(jax.value_and_grad(loss_one),
                        in_axes=(0, 0, 0, 0, 0, None, None, None))

    def prune(logits, mask, cap):
        f = _masked_softmax(logits, mask, slices)
        return _top_k_mask(f, mask & (f >= SNAP), slices, cap)

    @jax.jit
    def optimise(logits, mask, codes, lo, hi, prob, cap):
        # normalisation: spread of each head and of the score over the starting population
        heads0, _ = d._forward(prob["params"], _masked_softmax(logits, mask, slices), codes)
        sd = jnp.nanstd(heads0, axis=0)
        ss = jnp.nanstd(_score(heads0, prob["idx"], prob["kind"], prob["weight"],
                               prob["value"]))
        scales = {"heads": jnp.where(jnp.isfinite(sd) & (sd > 1e-6), sd, 1.0),
                  "score": jnp.where(jnp.isfinite(ss) & (ss > 1e-6), ss, 1.0)}

        def step(carry, t):
            logits, state, mask = carry
            mask = jax.lax.cond(jnp.isin(t, prune_at).any(), prune, lambda lg, m, c: m,
                                logits, mask, cap)
            rho = RHO[0] * (RHO[1] / RHO[0]) ** (t / max(steps - 1, 1))
            loss, g = grad_all(logits, mask, codes, lo, hi, prob, scales, rho)
            upd, state = opt.update(g, state, logits)
            return (optax.apply_updates(logits, upd), state, mask), loss.mean()

        (logits, _, mask), losses = jax.lax.scan(step, (logits, opt.init(logits), mask),
                                                 jnp.arange(steps))
        # clean (fractions under SNAP -> 0, sites renormalised) and evaluate
        f = _masked_softmax(logits, mask, slices)
        f = jnp.where(f < SNAP, 0.0, f)
        f = jnp.concatenate([f[:, sl] / f[:, sl].sum(-1, keepdims=True) for sl in slices], -1)
        heads, recon = d._forward(prob["params"], f, codes)
        return f, heads, recon, losses

    d._opt_cache[key] = optimise
    return optimise


def _prob_arrays(d: Designer, p: Problem) -> dict:
    """Objective arrays padded to :data:`MAX_TERMS` (weight 0) so one compiled run serves
    every objective."""
    n = len(p.obj_index)
    if n > MAX_TERMS:
        raise DesignError(f"at most {MAX_TERMS} objective terms")

    def pad(a, dtype):
        return jnp.asarray(np.concatenate([a, np.zeros(MAX_TERMS - n, a.dtype)]), dtype)
    return {"params": d.params, "idx": pad(p.obj_index, jnp.int32),
            "kind": pad(p.obj_kind, jnp.int32), "weight": pad(p.obj_weight, jnp.float32),
            "value": pad(p.obj_value, jnp.float32)}


def _softmax_np(logits: np.ndarray, mask: np.ndarray, space: CompositionSpace) -> np.ndarray:
    z = np.where(mask, logits.astype(np.float64), -np.inf)
    out = np.zeros_like(z)
    for sl in space.site_slices().values():
        e = np.exp(z[:, sl] - z[:, sl].max(axis=1, keepdims=True))
        out[:, sl] = e / e.sum(axis=1, keepdims=True)
    return out


def _start(d: Designer, v: Variables, starts: int, seed: int):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.5, (starts, len(d.space.ions))).astype(np.float32)
    mask = np.broadcast_to(v.allowed, logits.shape).copy()
    codes = v.combos[np.arange(starts) % len(v.combos)]
    return logits, mask, codes


def optimise(d: Designer, p: Problem, v: Variables, *, starts: int, steps: int, seed: int,
             lr: float = 0.1, lower: np.ndarray | None = None,
             upper: np.ndarray | None = None) -> dict:
    """Run the multi-start gradient design. ``lower``/``upper`` (starts, n_heads) override the
    problem's bounds per start (Pareto bands). Returns the cleaned fractions, codes, their
    heads and reconstruction errors ("evaluated"), losses and timings."""
    if starts < 1 or steps < 1:
        raise DesignError("--starts and --steps must be >= 1")
    logits, mask, codes = _start(d, v, starts, seed)
    lo = np.broadcast_to(p.lower if lower is None else lower, (starts, len(d.heads)))
    hi = np.broadcast_to(p.upper if upper is None else upper, (starts, len(d.heads)))
    run = _optimiser(d, steps, lr)
    cap = len(d.space.ions) if v.cap is None else v.cap
    args = (jnp.asarray(logits), jnp.asarray(mask), jnp.asarray(codes),
            jnp.asarray(lo, jnp.float32), jnp.asarray(hi, jnp.float32), _prob_arrays(d, p),
            jnp.asarray(cap, jnp.int32))
    t0 = time.perf_counter()
    shapes = ("compiled", steps, lr, starts)
    compiled = d._opt_cache.get(shapes)
    if compiled is None:
        compiled = d._opt_cache[shapes] = run.lower(*args).compile()
    t1 = time.perf_counter()
    fractions, heads, recon, losses = jax.block_until_ready(compiled(*args))
    t2 = time.perf_counter()
    return {"fractions": np.asarray(fractions), "codes": codes, "losses": np.asarray(losses),
            "evaluated": (np.asarray(heads), np.asarray(recon)),
            "compile_s": t1 - t0, "run_s": t2 - t1, "evaluations": starts * steps}


# ----------------------------------------------------------------------------------------------
# Public API


def _designer(run, space=None) -> Designer:
    return run if isinstance(run, Designer) else Designer(run, space)


def design(run, objective: Any = None, constraints: Any = (), exclude: Iterable[str] = (),
           *, fix: Any = None, max_ions_per_site: int | None = None, starts: int = 1024,
           steps: int = 500, seed: int = 0, learning_rate: float = 0.1,
           space: CompositionSpace | None = None) -> pd.DataFrame:
    """Ranked candidate compositions and device choices for ``objective`` under
    ``constraints``.

    run: a :class:`~nested_ae_jax.rundir.TrainedRun` (``load_run(path)``) or a
    :class:`Designer`. objective: 'SCALE.HEAD' (maximised), an :class:`Objective`, or a list
    (weighted sum); strings 'min:HEAD', 'target:HEAD=V', 'W*HEAD' are understood.
    constraints: strings like 'atomic.gap>=1.2' or :class:`Constraint`. exclude: ions (exactly
    0 in every candidate) or device choices never used. fix: {'X': 'I'} or ['X=I',
    'HTL_stack_sequence=PTAA']. Returns one row per unique candidate, best first: ``rank``,
    ``formula``, one fraction column per ion, one column per device choice, every head
    ``SCALE.HEAD`` (target scale: fold-ensemble mean, and ``.std``), ``score``, ``ood.*``,
    ``violation``, ``feasible``. ``table.attrs['design']`` holds timings and settings.
    """
    d = _designer(run, space)
    p = make_problem(d, objective, constraints)
    v = d.variables(exclude, fix, max_ions_per_site)
    res = optimise(d, p, v, starts=starts, steps=steps, seed=seed, lr=learning_rate)
    t0 = time.perf_counter()
    table = candidate_table(d, p, v, res["fractions"], res["codes"],
                            evaluated=res["evaluated"])
    table.attrs["design"] = {
        "objective": [o.__dict__ for o in p.objectives],
        "constraints": [str(c) for c in p.constraints], "exclude": list(v.exclude),
        "fix": v.fixed_sites, "max_ions_per_site": v.cap, "starts": starts, "steps": steps,
        "seed": seed, "evaluations": res["evaluations"], "compile_s": res["compile_s"],
        "run_s": res["run_s"], "table_s": time.perf_counter() - t0,
        "combos": len(v.combos), "final_loss": float(res["losses"][-1])}
    return table


def random_search(run, objective: Any = None, constraints: Any = (),
                  exclude: Iterable[str] = (), *, fix: Any = None,
                  max_ions_per_site: int | None = None, evaluations: int = 512_000,
                  seed: int = 0, keep: int = 1024, space: CompositionSpace | None = None
                  ) -> pd.DataFrame:
    """Baseline: ``evaluations`` random candidates (per site: a random number of allowed ions
    up to the cap, Dirichlet(1) fractions on them; a uniform device-choice combination). The
    ``keep`` best (by feasibility, score) are returned as a ranked table."""
    d = _designer(run, space)
    p = make_problem(d, objective, constraints)
    v = d.variables(exclude, fix, max_ions_per_site)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    best_f, best_c, best_key = [], [], []
    chunk = 32768
    for i in range(0, evaluations, chunk):
        n = min(chunk, evaluations - i)
        f = _random_fractions(rng, d.space, v, n)
        c = v.combos[rng.integers(0, len(v.combos), n)]
        heads, _ = d.evaluate(f, c)
        key = _ranking_key(p, heads)
        top = np.argsort(-key, kind="stable")[:keep]
        best_f.append(f[top]), best_c.append(c[top]), best_key.append(key[top])
        # keep the pool small
        allk = np.concatenate(best_key)
        order = np.argsort(-allk, kind="stable")[:keep]
        best_f = [np.concatenate(best_f)[order]]
        best_c = [np.concatenate(best_c)[order]]
        best_key = [allk[order]]
    seconds = time.perf_counter() - t0
    table = candidate_table(d, p, v, best_f[0], best_c[0])
    table.attrs["design"] = {"method": "random", "evaluations": evaluations, "run_s": seconds}
    return table


def _random_fractions(rng: np.random.Generator, space: CompositionSpace, v: Variables, n: int
                      ) -> np.ndarray:
    f = np.zeros((n, len(space.ions)))
    for sl in space.site_slices().values():
        ok = v.allowed[sl]
        m = int(ok.sum())
        k_max = min(m, v.cap or m)
        k = rng.integers(1, k_max + 1, n)
        u = np.where(ok, rng.random((n, ok.size)), np.inf)
        rank = np.argsort(np.argsort(u, axis=1), axis=1)
        chosen = rank < k[:, None]
        g = rng.gamma(1.0, size=(n, ok.size)) * chosen
        f[:, sl] = g / g.sum(axis=1, keepdims=True)
    return f


def latent_sampling(run, objective: Any = None, constraints: Any = (),
                    exclude: Iterable[str] = (), *, fix: Any = None,
                    max_ions_per_site: int | None = None, evaluations: int = 512_000,
                    decode: int = 1024, seed: int = 0, space: CompositionSpace | None = None
                    ) -> pd.DataFrame:
    """Baseline of the later work: ``evaluations`` random latents of the composition scale
    (uniform in the box of its training latents) with random device choices, scored by the
    heads decoded from the latent (``latent.SCALE.HEAD`` columns); the ``decode`` best are
    turned into compositions (reconstruction head -> raw descriptors -> nearest composition on
    the simplices, by projected gradient) and re-evaluated through the chain."""
    d = _designer(run, space)
    p = make_problem(d, objective, constraints)
    v = d.variables(exclude, fix, max_ions_per_site)
    if len(d.groups) != 1 or d.chain is None:
        raise DesignError("latent sampling needs a chain whose first scale alone reads the "
                          "composition descriptors")
    root, group, columns = d.groups[0]
    if root == d.target:
        raise DesignError("latent sampling needs a downstream scale")
    rmodel = d.chain.models[root]
    rec_head = next((h for h in rmodel.spec.heads if h.kind == "reconstruction"
                     and h.input == group), None)
    if rec_head is None:
        raise DesignError(f"latent sampling needs a reconstruction head of '{root}.{group}'")
    if root in d.chain.ensembles:
        raise DesignError("latent sampling needs a single feeding model (chain.feed = fold or "
                          "all_rows)")
    rp = jax.tree.map(lambda a: a[0], d.params["chain"][root])  # every copy's feeder alike
    rows = d.reference.get("rows", {}).get(root)
    if rows is None:
        raise DesignError(f"latent sampling needs the training data of scale '{root}'")
    mean, scale = d.descriptor_stats()
    z_train = np.asarray(rmodel.apply(rp.params, rp.stats,
                                      {group: jnp.asarray(rows * scale + mean, jnp.float32)}
                                      ).latent)
    lo, hi = z_train.min(0), z_train.max(0)

    def heads_of_latent(params, z, codes):
        rh = apply_heads(rmodel.spec, jax.tree.map(lambda a: a[0],
                                                   params["chain"][root].params), z)
        x = {g.name: z if g.kind == "latent" else codes[:, [c[1] for c in d.cats].index(g.name)]
             for g in d.tmodel.spec.inputs}
        tp = params["chain"][d.target]
        outs = jax.vmap(lambda pp, st: d.tmodel.apply(pp, st, x))(tp.params, tp.stats)
        cols = []
        for s, h, j, is_std in d._head_src:
            if s == d.target:
                val = outs.heads[h][..., j]
                cols.append(safe_std(val) if is_std else val.mean(0))
            else:
                cols.append(rh[h][:, j])
        return jnp.stack(cols, -1), rh[rec_head.name]

    if any(s != d.target for s, *_ in d.cats):
        raise DesignError("latent sampling: device choices must belong to the last scale")
    fn = jax.jit(heads_of_latent)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    pool_z, pool_c, pool_k = np.zeros((0, lo.size), np.float32), np.zeros((0, len(d.cats)),
                                                                          np.int32), np.zeros(0)
    chunk = 32768
    for i in range(0, evaluations, chunk):
        n = min(chunk, evaluations - i)
        z = (lo + (hi - lo) * rng.random((chunk, lo.size))).astype(np.float32)
        c = v.combos[rng.integers(0, len(v.combos), chunk)]
        heads, _ = fn(d.params, z, c)
        heads = np.asarray(heads)[:n]
        key = _ranking_key(p, heads)
        pool_z = np.concatenate([pool_z, z[:n]])
        pool_c = np.concatenate([pool_c, c[:n]])
        pool_k = np.concatenate([pool_k, key])
        order = np.argsort(-pool_k, kind="stable")[:decode]
        pool_z, pool_c, pool_k = pool_z[order], pool_c[order], pool_k[order]
    latent_heads, rec = fn(d.params, pool_z, pool_c)
    latent_heads = np.asarray(latent_heads)
    # decode: standardised reconstruction -> raw descriptors -> nearest composition
    target = np.asarray(rec) * scale + mean
    f = _project_descriptors(d, v, target, scale)
    seconds = time.perf_counter() - t0
    extra = {f"latent.{h}": latent_heads[:, j] for j, h in enumerate(d.heads)}
    extra["latent.score"] = score_np(p, latent_heads)
    table = candidate_table(d, p, v, f, pool_c, extra=extra)
    table.attrs["design"] = {"method": "latent", "evaluations": evaluations, "run_s": seconds,
                             "decoded": len(pool_z),
                             "best_latent_score": float(np.max(pool_k))}
    return table


def _project_descriptors(d: Designer, v: Variables, target: np.ndarray, scale: np.ndarray,
                         iters: int = 300) -> np.ndarray:
    """Compositions whose descriptors are nearest (standardised units) to ``target``, each
    site on the simplex of its allowed ions (and at most ``cap`` ions)."""
    root, group, _ = d.groups[0]
    w = jnp.asarray(np.asarray(d.params["W"][f"{root}/{group}"]) / scale, jnp.float32)
    t = jnp.asarray(target / scale, jnp.float32)
    slices = list(d.space.site_slices().values())
    allowed = jnp.asarray(v.allowed)
    lip = 2.0 * float(np.linalg.norm(np.asarray(w), 2) ** 2)

    def project(x, mask):
        parts = [optax.projections.projection_simplex(jnp.where(mask[sl], x[sl], -1e6))
                 for sl in slices]
        return jnp.concatenate(parts)

    def solve(tt, mask):
        x0 = project(jnp.where(mask, 1.0, 0.0), mask)

        def step(x, _):
            g = 2.0 * (x @ w - tt) @ w.T
            return project(x - g / lip, mask), None
        x, _ = jax.lax.scan(step, x0, None, length=iters)
        return x

    masks = jnp.broadcast_to(allowed, (len(t), allowed.size))
    x = jax.jit(jax.vmap(solve))(t, masks)
    if v.cap is not None:
        masks = _top_k_mask(x, masks, slices, v.cap)
        x = jax.jit(jax.vmap(solve))(t, masks)
    return np.asarray(x)


def direction(text: str) -> tuple[str, str]:
    m = re.fullmatch(r"(max|min):(.*)", text.strip())
    return (m.group(1), m.group(2).strip()) if m else ("max", text.strip())


def pareto_front(run, x: str, y: str, constraints: Any = (), exclude: Iterable[str] = (), *,
                 fix: Any = None, max_ions_per_site: int | None = None, starts: int = 1024,
                 steps: int = 500, seed: int = 0, bands: int = 16,
                 space: CompositionSpace | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pareto front of two heads (``'min:atomic.gap'``, ``'max:device.pce'``; default max) by
    the epsilon-constraint method: the starts are split over ``bands`` bands of ``x`` (over
    its range in the random starting population) and each optimises ``y`` inside its band.
    Returns (front, all candidates), both ranked tables; the front is sorted by ``x``."""
    d = _designer(run, space)
    (dx, hx), (dy, hy) = direction(x), direction(y)
    p = make_problem(d, Objective(hy, dy), constraints)
    v = d.variables(exclude, fix, max_ions_per_site)
    ix = d.head_index(hx)
    logits, mask, codes = _start(d, v, starts, seed)
    heads0, _ = d.evaluate(_softmax_np(logits, mask, d.space), codes)
    a = max(np.nanquantile(heads0[:, ix], 0.01), p.lower[ix])
    b = min(np.nanquantile(heads0[:, ix], 0.99), p.upper[ix])
    edges = np.linspace(a, b, bands + 1)
    band = np.arange(starts) // max(1, math.ceil(starts / bands))
    band = np.minimum(band, bands - 1)
    lower = np.tile(p.lower, (starts, 1))
    upper = np.tile(p.upper, (starts, 1))
    lower[:, ix] = np.maximum(lower[:, ix], edges[band])
    upper[:, ix] = np.minimum(upper[:, ix], edges[band + 1])
    res = optimise(d, p, v, starts=starts, steps=steps, seed=seed, lower=lower, upper=upper)
    table = candidate_table(d, p, v, res["fractions"], res["codes"], evaluated=res["evaluated"])
    feas = table[table["feasible"]]
    sx = feas[hx].to_numpy() * (1 if dx == "max" else -1)
    sy = feas[hy].to_numpy() * (1 if dy == "max" else -1)
    dominated = np.array([((sx >= a_) & (sy >= b_) & ((sx > a_) | (sy > b_))).any()
                          for a_, b_ in zip(sx, sy)], bool)
    front = feas[~dominated].sort_values(hx).reset_index(drop=True)
    front.attrs["pareto"] = {"x": hx, "y": hy, "x_direction": dx, "y_direction": dy}
    return front, table


def pareto_figure(front: pd.DataFrame, candidates: pd.DataFrame, x: str, y: str):
    """Scatter of the feasible candidates and the Pareto front, a few front points labelled
    with their formula (object API, Agg canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.6), layout="constrained", dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    feas = candidates[candidates["feasible"]]
    ax.scatter(feas[x], feas[y], s=6, c="0.75", label=f"feasible candidates ({len(feas)})")
    ax.plot(front[x], front[y], "o-", color="C3", ms=3.5, lw=1.2,
            label=f"Pareto front ({len(front)})")
    step = max(1, len(front) // 5)
    for _, r in front.iloc[::step].iterrows():
        ann = ax.annotate(r["formula"], (r[x], r[y]), fontsize=6, xytext=(4, 4),
                          textcoords="offset points", annotation_clip=True, clip_on=True)
        ann.set_in_layout(False)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"{y} vs {x}", fontsize=10)
    return fig


def write_pareto(front: pd.DataFrame, candidates: pd.DataFrame, x: str, y: str,
                 prefix: str | Path) -> tuple[Path, Path]:
    """``PREFIX.csv`` (the front) and ``PREFIX.png`` (the figure), atomically."""
    from . import io

    prefix = Path(prefix)
    csv, png = prefix.with_suffix(".csv"), prefix.with_suffix(".png")
    io.atomic_write_csv(csv, front)
    io.atomic_savefig(png, pareto_figure(front, candidates, x, y))
    return csv, png


def compare(run, objective: Any = None, constraints: Any = (),
            exclude: Iterable[str] = (), *, starts: int = 1024, steps: int = 500, seed: int = 0,
            **kwargs) -> list[dict]:
    """Best feasible score of gradient design, random search and latent sampling at equal
    numbers of model evaluations (starts x steps)."""
    d = _designer(run, kwargs.pop("space", None))
    out = []
    n = starts * steps
    for method, fn in (("gradient", lambda: design(d, objective, constraints, exclude,
                                                   starts=starts, steps=steps, seed=seed,
                                                   **kwargs)),
                       ("random", lambda: random_search(d, objective, constraints, exclude,
                                                        evaluations=n, seed=seed, **kwargs)),
                       ("latent", lambda: latent_sampling(d, objective, constraints, exclude,
                                                          evaluations=n, seed=seed, **kwargs))):
        t0 = time.perf_counter()
        table = fn()
        wall = time.perf_counter() - t0
        feas = table[table["feasible"]]
        best = feas.iloc[0] if len(feas) else None
        row = {"method": method, "evaluations": n, "wall_s": round(wall, 2),
               "n_feasible": int(len(feas)),
               "best_score": float(best["score"]) if best is not None else None,
               "best_formula": best["formula"] if best is not None else None,
               "top10_mean_score": float(feas["score"].head(10).mean()) if len(feas) else None}
        if best is not None:
            for _, _, col, _ in d.cats:
                row[col] = best[col]
            for h in d.heads:
                row[h] = float(best[h])
            if "ood.score" in best:
                row["ood.score"] = float(best["ood.score"])
        if method == "latent":
            row["best_latent_predicted_score"] = table.attrs["design"]["best_latent_score"]
        out.append(row)
    return out


def format_table(d: Designer, table: pd.DataFrame, top: int = 10) -> str:
    """The top rows: formula, device choices, heads, OOD score, feasibility."""
    cols = ["rank", "formula", *[c[2] for c in d.cats], *d.heads, "score"]
    cols += [c for c in ("ood.score",) if c in table.columns] + ["feasible"]
    view = table[cols].head(top)
    return view.to_string(index=False, float_format=lambda v: f"{v:.3f}")
