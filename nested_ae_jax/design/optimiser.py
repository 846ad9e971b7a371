"""The multi-start optimiser and :func:`design`.

Design variables are the site fractions (each site on its simplex, a masked softmax of free
logits) and the device choices (all allowed combinations enumerated, the starts spread over
them round-robin). Many starts run at once: the per-start loss and gradient are vmapped, Adam
(optax) steps them in one jit-compiled ``lax.scan``. Constraints are soft penalties during the
run (quadratic, in units of each head's spread over the random starting population, weight
ramped 10 -> 1e4, with a small margin inside the bound) and hard checks on the returned table
(``feasible``). Excluded ions get -inf logits (exactly 0); fixed sites are one-hot. After 50,
80 and 95 % of the steps each start's support is pruned (ions under 1 % dropped and, with a
cap on ions per site, all but the largest ``cap`` of each site) and the run goes on on that
support. At the end, fractions under 0.01 are zeroed, sites renormalised and the cleaned
compositions re-evaluated, so every reported number belongs to the reported fractions.
"""

from __future__ import annotations

import time
import weakref
from typing import Any, Callable, Iterable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from ..composition import CompositionSpace
from .adaptor import Designer, as_designer
from .objectives import DesignError
from .problem import SNAP, Problem, candidate_table, make_problem, score_jax
from .variables import Variables

MARGIN = 0.01  # soft constraints aim this far inside a bound (units of the head's spread)
RHO = (10.0, 1e4)  # penalty weight at the first and last step (geometric ramp)
PRUNE = (0.5, 0.8, 0.95)  # where the support is pruned (share of the steps done)
MAX_TERMS = 8  # objective terms (padded: one compiled program for any objective)


def _masked_softmax(logits: jax.Array, mask: jax.Array, slices: list[slice]) -> jax.Array:
    """Fractions (..., n_ions): a softmax of ``logits`` over each site's allowed ions."""
    parts = [jax.nn.softmax(jnp.where(mask[..., sl], logits[..., sl], -jnp.inf), axis=-1)
             for sl in slices]
    return jnp.concatenate(parts, axis=-1)


def top_k_mask(fractions: jax.Array, mask: jax.Array, slices: list[slice], k) -> jax.Array:
    """``mask`` (..., n_ions) keeping, per site, only the ``k`` largest allowed fractions of
    ``fractions`` (..., n_ions) (ties: first ion); ``k`` may be traced."""
    parts = []
    for sl in slices:
        f = jnp.where(mask[..., sl], fractions[..., sl], -1.0)
        n = f.shape[-1]
        fi, fj = f[..., :, None], f[..., None, :]
        earlier = jnp.arange(n)[None, :] < jnp.arange(n)[:, None]
        rank = ((fj > fi) | ((fj == fi) & earlier)).sum(-1)
        parts.append(mask[..., sl] & (rank < k))
    return jnp.concatenate(parts, axis=-1)


#: ``score_fn(score_params, design_params, fractions (N, n_ions), codes (N, n_cats)) -> (N,)``:
#: a custom score to maximise instead of a Problem's objective terms (traceable;
#: ``design_params`` is :attr:`Designer.params`). E.g. ``bo.suggest``'s acquisition of a GP
#: posterior on the chain's latents (:meth:`Designer.latents`).
ScoreFn = Callable[[Any, dict, jax.Array, jax.Array], jax.Array]


#: compiled optimiser runs, per designer (dropped with it): jitted runs by (steps, lr,
#: score_fn), compiled executables by their argument shapes
_CACHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cache(d: Designer) -> dict:
    """The compile cache of designer ``d``."""
    return _CACHES.setdefault(d, {})


def _optimiser(d: Designer, steps: int, lr: float, score_fn: ScoreFn | None = None):
    """The multi-start run, jit-compiled (cached per designer and steps/lr/score_fn).

    At the steps given by :data:`PRUNE` every start's support is pruned: ions under
    :data:`SNAP` and all but the ``cap`` largest of each site get -inf logits (exactly 0 from
    then on), so the returned compositions are optimised on the support they are reported
    with. ``cap`` is an argument (no recompilation per cap)."""
    key = (steps, lr, score_fn)
    cache = _cache(d)
    if key in cache:
        return cache[key]
    slices = list(d.space.site_slices().values())
    sched = optax.cosine_decay_schedule(lr, max(steps, 1), alpha=0.02)
    opt = optax.adam(sched)
    prune_at = jnp.asarray(sorted({int(round(steps * q)) for q in PRUNE} - {0}), jnp.int32)

    def score_of(prob, heads, f, codes):
        if score_fn is None:
            return score_jax(heads, prob["idx"], prob["kind"], prob["weight"], prob["value"])
        return score_fn(prob["score"], prob["params"], f, codes)

    def loss_one(logits, mask, code, lo, hi, prob, scales, rho):
        f = _masked_softmax(logits, mask, slices)[None]
        heads, _ = d.forward(prob["params"], f, code[None])
        score = score_of(prob, heads, f, code[None])[0]
        heads = heads[0]
        s = scales["heads"]
        below = jnp.where(jnp.isfinite(lo), jax.nn.relu((lo - heads) / s + MARGIN), 0.0)
        above = jnp.where(jnp.isfinite(hi), jax.nn.relu((heads - hi) / s + MARGIN), 0.0)
        pen = (below ** 2 + above ** 2).sum()
        return -score / scales["score"] + rho * pen

    grad_all = jax.vmap(jax.value_and_grad(loss_one),
                        in_axes=(0, 0, 0, 0, 0, None, None, None))

    def prune(logits, mask, cap):
        f = _masked_softmax(logits, mask, slices)
        return top_k_mask(f, mask & (f >= SNAP), slices, cap)

    @jax.jit
    def optimise(logits, mask, codes, lo, hi, prob, cap):
        # normalisation: spread of each head and of the score over the starting population
        f0 = _masked_softmax(logits, mask, slices)
        heads0, _ = d.forward(prob["params"], f0, codes)
        sd = jnp.nanstd(heads0, axis=0)
        ss = jnp.nanstd(score_of(prob, heads0, f0, codes))
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
        heads, recon = d.forward(prob["params"], f, codes)
        return f, heads, recon, losses

    cache[key] = optimise
    return optimise


def _prob_arrays(d: Designer, p: Problem, score_params: Any = None) -> dict:
    """Objective arrays padded to :data:`MAX_TERMS` (weight 0) so one compiled run serves
    every objective; ``score_params`` for a custom score function."""
    n = len(p.obj_index)
    if n > MAX_TERMS:
        raise DesignError(f"at most {MAX_TERMS} objective terms")

    def pad(a, dtype):
        return jnp.asarray(np.concatenate([a, np.zeros(MAX_TERMS - n, a.dtype)]), dtype)
    return {"params": d.params, "idx": pad(p.obj_index, jnp.int32),
            "kind": pad(p.obj_kind, jnp.int32), "weight": pad(p.obj_weight, jnp.float32),
            "value": pad(p.obj_value, jnp.float32), "score": score_params}


def softmax_np(logits: np.ndarray, mask: np.ndarray, space: CompositionSpace) -> np.ndarray:
    """:func:`_masked_softmax` in NumPy (float64): fractions (N, n_ions) of logits (N, n_ions)
    under mask (N, n_ions)."""
    z = np.where(mask, logits.astype(np.float64), -np.inf)
    out = np.zeros_like(z)
    for sl in space.site_slices().values():
        e = np.exp(z[:, sl] - z[:, sl].max(axis=1, keepdims=True))
        out[:, sl] = e / e.sum(axis=1, keepdims=True)
    return out


def random_starts(d: Designer, v: Variables, starts: int, seed: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The starting population: logits (starts, n_ions) ~ N(0, 1.5), mask (starts, n_ions) of
    the allowed ions, codes (starts, n_cats) cycling through ``v.combos``."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.5, (starts, len(d.space.ions))).astype(np.float32)
    mask = np.broadcast_to(v.allowed, logits.shape).copy()
    codes = v.combos[np.arange(starts) % len(v.combos)]
    return logits, mask, codes


class Optimised(NamedTuple):
    """What :func:`optimise` returns: cleaned ``fractions`` (starts, n_ions), ``codes``
    (starts, n_cats), ``losses`` (steps,) mean loss per step, ``evaluated``: heads
    (starts, n_heads) and reconstruction errors (starts, n_rec) of the cleaned fractions,
    ``compile_s`` and ``run_s`` seconds, ``evaluations`` (starts x steps)."""

    fractions: np.ndarray
    codes: np.ndarray
    losses: np.ndarray
    evaluated: tuple[np.ndarray, np.ndarray]
    compile_s: float
    run_s: float
    evaluations: int


def optimise(d: Designer, p: Problem, v: Variables, *, starts: int, steps: int, seed: int,
             lr: float = 0.1, lower: np.ndarray | None = None,
             upper: np.ndarray | None = None, score_fn: ScoreFn | None = None,
             score_params: Any = None) -> Optimised:
    """Run the multi-start gradient design.

    Args: starts: parallel starts; steps: Adam steps; seed: of the starting population; lr:
    initial learning rate (cosine decay); lower, upper (starts, n_heads): override the
    problem's bounds per start (Pareto bands); score_fn, score_params: maximise
    ``score_fn(score_params, d.params, fractions, codes)`` (see :data:`ScoreFn`) instead of
    the problem's objective terms (its bounds still hold).
    Returns: :class:`Optimised` (cleaned fractions, codes, their heads and reconstruction
    errors, losses and timings)."""
    if starts < 1 or steps < 1:
        raise DesignError("--starts and --steps must be >= 1")
    logits, mask, codes = random_starts(d, v, starts, seed)
    lo = np.broadcast_to(p.lower if lower is None else lower, (starts, len(d.heads)))
    hi = np.broadcast_to(p.upper if upper is None else upper, (starts, len(d.heads)))
    run = _optimiser(d, steps, lr, score_fn)
    cap = len(d.space.ions) if v.cap is None else v.cap
    args = (jnp.asarray(logits), jnp.asarray(mask), jnp.asarray(codes),
            jnp.asarray(lo, jnp.float32), jnp.asarray(hi, jnp.float32),
            _prob_arrays(d, p, score_params), jnp.asarray(cap, jnp.int32))
    t0 = time.perf_counter()
    shapes = ("compiled", steps, lr, starts, score_fn,
              tuple((np.shape(a), str(getattr(a, "dtype", type(a))))
                    for a in jax.tree.leaves(score_params)))
    compiled = _cache(d).get(shapes)
    if compiled is None:
        compiled = _cache(d)[shapes] = run.lower(*args).compile()
    t1 = time.perf_counter()
    fractions, heads, recon, losses = jax.block_until_ready(compiled(*args))
    t2 = time.perf_counter()
    return Optimised(np.asarray(fractions), codes, np.asarray(losses),
                     (np.asarray(heads), np.asarray(recon)), t1 - t0, t2 - t1, starts * steps)


def design(run, objective: Any = None, constraints: Any = (), exclude: Iterable[str] = (),
           *, fix: Any = None, max_ions_per_site: int | None = None, starts: int = 1024,
           steps: int = 500, seed: int = 0, learning_rate: float = 0.1,
           space: CompositionSpace | None = None) -> pd.DataFrame:
    """Ranked candidate compositions and device choices for ``objective`` under
    ``constraints``.

    run: a :class:`~nested_ae_jax.chain.TrainedChain` (``nested_ae_jax.load(path)``) or a
    :class:`Designer`. objective: 'SCALE.HEAD' (maximised), an :class:`Objective`, or a list
    (weighted sum); strings 'min:HEAD', 'target:HEAD=V', 'W*HEAD' are understood.
    constraints: strings like 'atomic.gap>=1.2' or :class:`Constraint`. exclude: ions (exactly
    0 in every candidate) or device choices never used. fix: {'X': 'I'} or ['X=I',
    'HTL_stack_sequence=PTAA']. Returns one row per unique candidate, best first: ``rank``,
    ``formula``, one fraction column per ion, one column per device choice, every head
    ``SCALE.HEAD`` (target scale: fold-ensemble mean, and ``.std``), ``score``, ``ood.*``,
    ``violation``, ``feasible``. ``table.attrs['design']`` holds timings and settings.
    """
    d = as_designer(run, space)
    p = make_problem(d, objective, constraints)
    v = d.variables(exclude, fix, max_ions_per_site)
    res = optimise(d, p, v, starts=starts, steps=steps, seed=seed, lr=learning_rate)
    t0 = time.perf_counter()
    table = candidate_table(d, p, v, res.fractions, res.codes, evaluated=res.evaluated)
    table.attrs["design"] = {
        "objective": [o._asdict() for o in p.objectives],
        "constraints": [str(c) for c in p.constraints], "exclude": list(v.exclude),
        "fix": v.fixed_sites, "max_ions_per_site": v.cap, "starts": starts, "steps": steps,
        "seed": seed, "evaluations": res.evaluations, "compile_s": res.compile_s,
        "run_s": res.run_s, "table_s": time.perf_counter() - t0,
        "combos": len(v.combos), "final_loss": float(res.losses[-1])}
    return table
