"""The adaptor: a trained run as one differentiable function for design.

:class:`Designer` wraps a trained chain as a function of site fractions (N, n_ions) and
device-choice codes (N, n_cats) -> every scale's regression heads (N, n_heads) and the
reconstruction errors (N, n_rec). Composition -> descriptors by the per-ion table of
:mod:`..composition` (a linear map per input group); descriptors -> heads by the trained chain
applied exactly as ``predict`` applies it (:mod:`..trained`: one chain copy per target model,
each fed by the upstream models that fed it in training, averaged; ``SCALE.HEAD.std`` is the
spread over the target's models). It also holds the reference data for the out-of-domain
score (``ood.*`` columns).
"""

from __future__ import annotations

import math
import sys
from typing import Any, Iterable

import jax
import jax.numpy as jnp
import numpy as np

from .. import trained
from ..composition import BANDGAP_FILE, CompositionSpace, load_space
from ..errors import NestedAEError, did_you_mean
from .objectives import DesignError
from .variables import Variables, make_variables


class Designer:
    """A trained run made ready for design: the chain as one function of (fractions, device
    choices), its head names, the design variables and the reference data for the
    out-of-domain score. Build once and pass it to :func:`design` & co. to reuse compiled code.

    Attributes: ``target`` (last scale), ``upto`` (the scales it stands on, target last),
    ``space`` (the per-ion table), ``groups`` [(scale, input group, columns)] (the composition
    descriptor inputs), ``cats`` [(scale, group, column, labels)] (the device choices),
    ``heads`` ['SCALE.HEAD', ..., target 'SCALE.HEAD.std'], ``head_sources`` [(scale, head,
    column, is_std)] (where each head is read), ``recon_scales`` (scales with reconstruction
    heads), ``params`` ({"chain": chain copies, "W": descriptor weights (n_ions, n_columns) per
    'SCALE/GROUP'}), ``reference`` (out-of-domain reference), ``opt_cache`` (compiled
    optimiser runs, see :mod:`.optimiser`).
    """

    def __init__(self, run, space: CompositionSpace | None = None, *,
                 reference: bool = True) -> None:
        self.run = run
        self.target = run.scales[-1]
        specs = self.specs = run.specs
        self.upto = run.upto(self.target)
        loaded = run.trained
        self.space = space if space is not None else _space_of_run(run, self.upto)

        # one chain copy per target model, each fed as in training (TrainedChain.copies: the
        # path predict uses, so design and predict agree; with transfer_scaler = refit the
        # upstream scalers re-fitted on the target's training rows)
        tgt = loaded[self.target]
        self.chain, copies = run.copies(self.target)
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
        self.head_sources: list[tuple[str, str, int, bool]] = []
        for s in self.upto:
            for h in specs[s].heads:
                if h.kind != "regression":
                    continue
                names = [h.name] if len(h.target) == 1 else [f"{h.name}[{t}]" for t in h.target]
                for j, nm in enumerate(names):
                    self.heads.append(f"{s}.{nm}")
                    self.head_sources.append((s, h.name, j, False))
        if self.n_models > 1:
            for s, h, j, _ in list(self.head_sources):
                if s == self.target:
                    nm = self.heads[self.head_sources.index((s, h, j, False))]
                    self.heads.append(f"{nm}.std")
                    self.head_sources.append((s, h, j, True))
        self.recon_scales = [s for s in self.upto if any(
            h.kind == "reconstruction" for h in specs[s].heads)]

        self._eval = jax.jit(self.forward)
        self.opt_cache: dict = {}
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
        for s, h, j, is_std in self.head_sources:
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

    def forward(self, params: dict, fractions: jax.Array, codes: jax.Array
                ) -> tuple[jax.Array, jax.Array]:
        """The differentiable chain (traceable; ``params``: :attr:`params`).

        Args: fractions (N, n_ions) site fractions; codes (N, n_cats) int device-choice codes.
        Returns: heads (N, n_heads) in :attr:`heads` order, reconstruction MAE (N, n_rec) of
        :attr:`recon_scales`."""
        return self._forward_inputs(params, self._inputs(params, fractions, codes))

    def raw_inputs(self, params: dict, fractions: jax.Array, codes: jax.Array) -> dict:
        """The raw inputs {SCALE: {GROUP: array}} of every scale (as ``TrainedChain.inputs``
        reads them from a file) of compositions and device-choice codes (traceable)."""
        return self._inputs(params, fractions, codes)

    def latents_of_inputs(self, params: dict, inputs: dict, scales: list[str]) -> jax.Array:
        """Latents (N, sum of latent sizes) of ``scales`` (each with every scale it stands on
        among them; upstream first), computed by the first chain copy (the target's first
        model, fed as in training: latents of different models do not line up) from raw
        inputs {SCALE: {GROUP: array}} (traceable)."""
        first = {n: jax.tree.map(lambda a: a[0], params["chain"][n]) for n in scales}
        outs = self.chain.apply(first, inputs)
        return jnp.concatenate([outs[n].latent for n in scales], axis=-1)

    def latents(self, params: dict, fractions: jax.Array, codes: jax.Array,
                scales: list[str] | None = None) -> jax.Array:
        """:meth:`latents_of_inputs` of compositions and device-choice codes (default: every
        scale of :attr:`upto`)."""
        return self.latents_of_inputs(params, self._inputs(params, fractions, codes),
                                      self.upto if scales is None else scales)

    def evaluate(self, fractions: np.ndarray, codes: np.ndarray, chunk: int = 32768
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Heads and reconstruction errors of compositions and device-choice codes, in chunks
        of a fixed size (one compilation).

        Args: fractions (N, n_ions); codes (N, n_cats) int, indices into each choice's labels.
        Returns: heads (N, n_heads) in :attr:`heads` order, reconstruction MAE (N, n_rec)."""
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
        """Standardised composition descriptors (N, D) of compositions (N, n_ions), D: every
        composition group's columns, concatenated."""
        mean, scale = self.descriptor_stats()
        raw = np.concatenate([np.asarray(fractions) @ np.asarray(self.params["W"][f"{s}/{g}"])
                              for s, g, _ in self.groups], axis=1)
        return (raw - mean) / scale

    def _reference(self) -> dict:
        """Per scale: the unique standardised descriptor rows of its training file and the
        95th percentile of their nearest-other-row distance; reconstruction errors of the
        target file's rows (95th percentile per scale)."""
        from ..data import read_table
        ref: dict[str, Any] = {"rows": {}, "dist95": {}, "recon95": None}
        mean, scale = self.descriptor_stats()
        for s in self.upto:
            spec = self.specs[s]
            try:
                frame = read_table(spec.data, spec.column_names)
                inputs = self.run.inputs(frame, scale=s, source=spec.data)
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
        """Position of head ``name`` ('SCALE.HEAD') in :attr:`heads` (DesignError if none)."""
        if name not in self.heads:
            raise DesignError(f"unknown head '{name}'{did_you_mean(name, self.heads)}; "
                              f"heads: {', '.join(self.heads)}")
        return self.heads.index(name)

    def variables(self, exclude: Iterable[str] = (), fix: Any = None,
                  max_ions_per_site: int | None = None) -> Variables:
        """The design variables of a request (see :func:`.variables.make_variables`)."""
        return make_variables(self, exclude, fix, max_ions_per_site)



def _nearest(x: np.ndarray, rows: np.ndarray, exclude_self: bool = False,
             chunk: int = 2048) -> np.ndarray:
    """Euclidean distance (N,) of each row of ``x`` (N, D) to its nearest row of ``rows``
    (M, D) (``exclude_self``: ignoring rows at distance 0)."""
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


def as_designer(run, space=None) -> Designer:
    """``run`` itself if it is a :class:`Designer`, else a new one of the trained run."""
    return run if isinstance(run, Designer) else Designer(run, space)
