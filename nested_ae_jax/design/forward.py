"""The forward function for design: a trained chain (a ``TrainedChain``) as one differentiable
function of site fractions (N, n_ions) and device-choice codes (N, n_cats) -> every scale's
regression heads (N, n_heads) and the reconstruction errors (N, n_rec).

Composition -> descriptors by the per-ion table of :mod:`..composition` (a linear map per input
group); descriptors -> heads by the trained chain applied exactly as ``predict`` applies it
(:mod:`..trained`: one chain copy per target model, each fed by the upstream models that fed it
in training, averaged; ``SCALE.HEAD.std`` is the spread over the target's models). Which
inputs, choices and heads it has are records (:class:`DesignInput`, :class:`DesignChoice`,
:class:`HeadSource`).
"""

from __future__ import annotations

import sys
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import trained
from ..composition import BANDGAP_FILE, CompositionSpace, load_space
from ..errors import NestedAEError, did_you_mean
from .objectives import DesignError


class DesignInput(NamedTuple):
    """A composition input group: descriptor columns computed from the site fractions."""

    scale: str
    group: str
    columns: tuple[str, ...]


class DesignChoice(NamedTuple):
    """A device choice: a categorical input group, its column and its labels (codes index
    them)."""

    scale: str
    group: str
    column: str
    labels: tuple[str, ...]


class HeadSource(NamedTuple):
    """Where a design head is read: ``head``'s output ``column`` of ``scale``, its mean over
    the chain copies or (``is_std``) their spread."""

    scale: str
    head: str
    column: int
    is_std: bool


class ChainForward:
    """A trained run as one function of (fractions, device choices), with its head names.

    Attributes: ``target`` (last scale), ``upto`` (the scales it stands on, target last),
    ``space`` (the per-ion table), ``groups`` [:class:`DesignInput`] (the composition
    descriptor inputs), ``cats`` [:class:`DesignChoice`] (the device choices), ``heads``
    ['SCALE.HEAD', ..., target 'SCALE.HEAD.std'], ``head_sources`` [:class:`HeadSource`]
    (where each head is read), ``recon_scales`` (scales with reconstruction heads), ``params``
    ({"chain": chain copies, "W": descriptor weights (n_ions, n_columns) per 'SCALE/GROUP'}).
    """

    def __init__(self, run, space: CompositionSpace | None = None) -> None:
        self.run = run
        self.target = run.scales[-1]
        specs = self.specs = run.specs
        self.upto = run.upto(self.target)
        loaded = run.trained
        self.space = space if space is not None else space_of_run(run, self.upto)

        # one chain copy per target model, each fed as in training (TrainedChain.copies: the
        # path predict uses, so design and predict agree; with transfer_scaler = refit the
        # upstream scalers re-fitted on the target's training rows)
        tgt = loaded[self.target]
        self.chain, copies = run.copies(self.target)
        self.tmodel = tgt.model
        self.n_models = len(tgt.models())
        self.params = {"chain": copies}

        # composition groups: every numeric input group of every scale
        self.groups: list[DesignInput] = []
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
                self.groups.append(DesignInput(s, g.name, tuple(g.columns)))
                weights[f"{s}/{g.name}"] = jnp.asarray(self.space.weights(g.columns),
                                                       jnp.float32)
        if not self.groups:
            raise DesignError("design: no scale of the chain takes composition descriptors")
        self.params["W"] = weights

        # categorical design choices
        self.cats: list[DesignChoice] = []
        for s in self.upto:
            for g in specs[s].inputs:
                if g.kind == "categorical":
                    self.cats.append(DesignChoice(s, g.name, g.column,
                                                  loaded[s].categories.groups[g.name]))

        # heads: regression heads of every scale, plus .std of the target's
        self.heads: list[str] = []
        self.head_sources: list[HeadSource] = []
        for s in self.upto:
            for h in specs[s].heads:
                if h.kind != "regression":
                    continue
                names = [h.name] if len(h.target) == 1 else [f"{h.name}[{t}]" for t in h.target]
                for j, nm in enumerate(names):
                    self.heads.append(f"{s}.{nm}")
                    self.head_sources.append(HeadSource(s, h.name, j, False))
        if self.n_models > 1:
            for s, h, j, _ in list(self.head_sources):
                if s == self.target:
                    nm = self.heads[self.head_sources.index(HeadSource(s, h, j, False))]
                    self.heads.append(f"{nm}.std")
                    self.head_sources.append(HeadSource(s, h, j, True))
        self.recon_scales = [s for s in self.upto if any(
            h.kind == "reconstruction" for h in specs[s].heads)]

        self._eval = jax.jit(self.forward)

    def _inputs(self, params: dict, fractions: jax.Array, codes: jax.Array) -> dict:
        inputs: dict[str, dict] = {s: {} for s in self.upto}
        for c in self.groups:
            inputs[c.scale][c.group] = fractions @ params["W"][f"{c.scale}/{c.group}"]
        for k, c in enumerate(self.cats):
            inputs[c.scale][c.group] = codes[:, k]
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

    def descriptor_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and scale standardising the concatenated composition descriptors (the scalers
        of the models that read them)."""
        means, scales = [], []
        for c in self.groups:
            st = self.params["chain"][c.scale].stats[c.group]
            m, sc = np.asarray(st["mean"]), np.asarray(st["scale"])
            means.append(m.reshape(-1, m.shape[-1])[0])
            scales.append(sc.reshape(-1, sc.shape[-1])[0])
        return np.concatenate(means), np.concatenate(scales)

    def descriptors(self, fractions: np.ndarray) -> np.ndarray:
        """Standardised composition descriptors (N, D) of compositions (N, n_ions), D: every
        composition group's columns, concatenated."""
        mean, scale = self.descriptor_stats()
        raw = np.concatenate([np.asarray(fractions) @ np.asarray(self.params["W"][f"{c.scale}/"
                                                                                 f"{c.group}"])
                              for c in self.groups], axis=1)
        return (raw - mean) / scale

    def head_index(self, name: str) -> int:
        """Position of head ``name`` ('SCALE.HEAD') in :attr:`heads` (DesignError if none)."""
        if name not in self.heads:
            raise DesignError(f"unknown head '{name}'{did_you_mean(name, self.heads)}; "
                              f"heads: {', '.join(self.heads)}")
        return self.heads.index(name)


def space_of_run(run, upto: list[str]) -> CompositionSpace:
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
