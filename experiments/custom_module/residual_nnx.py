"""A residual MLP as a user ``flax.nnx`` module (usable as an encoder or a head).

nnx modules are built eagerly, so the factory takes the input width and the rngs too:
nested_ae_jax calls ``make_head(in_features=IN, out_features=WIDTH,
rngs=nnx.Rngs(params=..., dropout=...), **options)`` and keeps the module's ``nnx.Param``
state as the trained parameters (``nnx.split`` / ``nnx.merge``); dropout is reseeded with a
fresh key on every training step. Example, a gap head::

    [scales.atomic.heads.gap]
    kind = "regression"
    target = "Gap"
    module = "residual_nnx.py:make_head"
    options = { width = 64, blocks = 2, dropout = 0.1 }

    x (N, IN) -> Linear -> relu -> [h + dropout(relu(Linear(h)))] x blocks -> Linear (N, WIDTH)
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx


class ResidualMLP(nnx.Module):
    def __init__(self, in_features: int, out_features: int, *, rngs: nnx.Rngs,
                 width: int = 32, blocks: int = 2, dropout: float = 0.0):
        self.inp = nnx.Linear(in_features, width, rngs=rngs)
        self.blocks = nnx.List([nnx.Linear(width, width, rngs=rngs) for _ in range(blocks)])
        self.drop = nnx.Dropout(dropout, rngs=rngs)
        self.out = nnx.Linear(width, out_features, rngs=rngs)

    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        h = nnx.relu(self.inp(x))
        for block in self.blocks:
            h = h + self.drop(nnx.relu(block(h)), deterministic=not train)
        return self.out(h)


def make_head(in_features: int, out_features: int, *, rngs: nnx.Rngs, **options) -> nnx.Module:
    return ResidualMLP(in_features, out_features, rngs=rngs, **options)
