"""Baselines for the gradient design, at equal numbers of model evaluations.

:func:`random_search`: random compositions and device choices, as many model evaluations as
the gradient run. :func:`latent_sampling` (the later work's approach): random latents of the
composition scale within its training range, decoded by the heads; the best are decoded to
compositions by the reconstruction head and a simplex projection, then re-evaluated honestly
through the chain. :func:`compare`: best feasible score of the three methods.
"""

from __future__ import annotations

import time
from typing import Any, Iterable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from ..composition import CompositionSpace
from ..evaluation import safe_std
from .adaptor import Designer, as_designer
from .objectives import DesignError
from .optimiser import design, top_k_mask
from .problem import candidate_table, make_problem, ranking_key, score_np
from .variables import Variables

def random_search(run, objective: Any = None, constraints: Any = (),
                  exclude: Iterable[str] = (), *, fix: Any = None,
                  max_ions_per_site: int | None = None, evaluations: int = 512_000,
                  seed: int = 0, keep: int = 1024, space: CompositionSpace | None = None
                  ) -> pd.DataFrame:
    """Baseline: ``evaluations`` random candidates (per site: a random number of allowed ions
    up to the cap, Dirichlet(1) fractions on them; a uniform device-choice combination). The
    ``keep`` best (by feasibility, score) are returned as a ranked table."""
    d = as_designer(run, space)
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
        key = ranking_key(p, heads)
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
    """``n`` random compositions (n, n_ions): per site a random number of allowed ions (up to
    the cap), Dirichlet(1) fractions on them."""
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
    d = as_designer(run, space)
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
    rows = d.reference.rows.get(root)
    if rows is None:
        raise DesignError(f"latent sampling needs the training data of scale '{root}'")
    mean, scale = d.descriptor_stats()
    z_train = np.asarray(rmodel.apply(rp.params, rp.stats,
                                      {group: jnp.asarray(rows * scale + mean, jnp.float32)}
                                      ).latent)
    lo, hi = z_train.min(0), z_train.max(0)

    def heads_of_latent(params, z, codes):
        rh = rmodel.decode(jax.tree.map(lambda a: a[0], params["chain"][root].params), z)
        x = {g.name: z if g.kind == "latent" else codes[:, [c.group for c in d.cats].index(g.name)]
             for g in d.tmodel.spec.inputs}
        tp = params["chain"][d.target]
        outs = jax.vmap(lambda pp, st: d.tmodel.apply(pp, st, x))(tp.params, tp.stats)
        cols = []
        for s, h, j, is_std in d.head_sources:
            if s == d.target:
                val = outs.heads[h][..., j]
                cols.append(safe_std(val) if is_std else val.mean(0))
            else:
                cols.append(rh[h][:, j])
        return jnp.stack(cols, -1), rh[rec_head.name]

    if any(c.scale != d.target for c in d.cats):
        raise DesignError("latent sampling: device choices must belong to the last scale")
    fn = jax.jit(heads_of_latent)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    pool_z, pool_c, pool_k = _best_latents(fn, d, p, v, lo, hi, evaluations, decode, rng)
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


def _best_latents(fn, d: Designer, p, v: Variables, lo: np.ndarray, hi: np.ndarray,
                  evaluations: int, decode: int, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``evaluations`` random latents (uniform in [lo, hi]) with random allowed device choices,
    scored in chunks by ``fn`` (latent -> heads); the ``decode`` best latents, their choices
    and ranking keys, best first."""
    pool_z, pool_c, pool_k = np.zeros((0, lo.size), np.float32), np.zeros((0, len(d.cats)),
                                                                          np.int32), np.zeros(0)
    chunk = 32768
    for i in range(0, evaluations, chunk):
        n = min(chunk, evaluations - i)
        z = (lo + (hi - lo) * rng.random((chunk, lo.size))).astype(np.float32)
        c = v.combos[rng.integers(0, len(v.combos), chunk)]
        heads, _ = fn(d.params, z, c)
        heads = np.asarray(heads)[:n]
        key = ranking_key(p, heads)
        pool_z = np.concatenate([pool_z, z[:n]])
        pool_c = np.concatenate([pool_c, c[:n]])
        pool_k = np.concatenate([pool_k, key])
        order = np.argsort(-pool_k, kind="stable")[:decode]
        pool_z, pool_c, pool_k = pool_z[order], pool_c[order], pool_k[order]
    return pool_z, pool_c, pool_k


def _project_descriptors(d: Designer, v: Variables, target: np.ndarray, scale: np.ndarray,
                         iters: int = 300) -> np.ndarray:
    """Compositions (N, n_ions) whose descriptors are nearest (standardised units) to
    ``target`` (N, D) raw descriptors of the first composition group (``scale`` (D,): their
    standardising scale), each site on the simplex of its allowed ions (and at most ``cap``
    ions), by projected gradient."""
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
        masks = top_k_mask(x, masks, slices, v.cap)
        x = jax.jit(jax.vmap(solve))(t, masks)
    return np.asarray(x)


def compare(run, objective: Any = None, constraints: Any = (),
            exclude: Iterable[str] = (), *, starts: int = 1024, steps: int = 500, seed: int = 0,
            **kwargs) -> list[dict]:
    """Best feasible score of gradient design, random search and latent sampling at equal
    numbers of model evaluations (starts x steps)."""
    d = as_designer(run, kwargs.pop("space", None))
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
            for col in (c.column for c in d.cats):
                row[col] = best[col]
            for h in d.heads:
                row[h] = float(best[h])
            if "ood.score" in best:
                row["ood.score"] = float(best["ood.score"])
        if method == "latent":
            row["best_latent_predicted_score"] = table.attrs["design"]["best_latent_score"]
        out.append(row)
    return out
