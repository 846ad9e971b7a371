"""Per-row losses of every head, their masked means, and weight penalties.

Masked means are how folds and padded mini-batches work: a row whose weight is 0 contributes
nothing, so a batch padded to a fixed size has exactly the loss (and gradient) of the unpadded
batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from .config import HeadSpec, ScaleSpec
from .model import Params


def row_loss(head: HeadSpec, pred: jax.Array, target: jax.Array) -> jax.Array:
    """Loss of every row, (N,): mean over the head's output columns (MAE, MSE, Huber) or
    softmax cross-entropy against integer class codes ``target`` (N,)."""
    name = head.loss_name
    if name == "cross_entropy":
        return optax.softmax_cross_entropy_with_integer_labels(pred, target)
    err = pred - target
    if name == "mae":
        per = jnp.abs(err)
    elif name == "mse":
        per = err**2
    else:
        per = optax.huber_loss(pred, target, delta=head.huber_delta)
    return per.mean(axis=-1)


def head_targets(spec: ScaleSpec, outputs: dict, targets: dict) -> dict:
    """What each head is compared with: target columns from the data, or the standardised /
    coded input group it reconstructs (taken as a constant: gradients do not flow into a
    reconstruction target)."""
    out = {}
    for h in spec.heads:
        if h.kind == "regression" or (h.kind == "categorical" and not h.input):
            out[h.name] = targets[h.name]
        elif h.kind == "categorical":
            out[h.name] = jnp.argmax(outputs.features[h.input], axis=-1)
        else:
            out[h.name] = jax.lax.stop_gradient(outputs.features[h.input])
    return out


def head_row_losses(spec: ScaleSpec, outputs: dict, targets: dict) -> dict[str, jax.Array]:
    """{HEAD: (N,) per-row loss}."""
    want = head_targets(spec, outputs, targets)
    return {h.name: row_loss(h, outputs.heads[h.name], want[h.name]) for h in spec.heads}


def masked_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
    """Weighted mean over rows; 0 when every weight is 0."""
    return (values * weights).sum() / jnp.maximum(weights.sum(), 1e-12)


def weight_penalty(params: Params, l1: dict, l2: dict) -> jax.Array:
    """sum over modules of l1*sum|W| + l2*sum W^2 over weight matrices (biases excluded).
    ``l1``/``l2``: {"encoder": c, "heads": {HEAD: c}}."""
    def module(layers, c1, c2):
        return sum(c1 * jnp.abs(layer["w"]).sum() + c2 * (layer["w"] ** 2).sum()
                   for layer in layers)
    total = module(params["encoder"], l1["encoder"], l2["encoder"])
    for name, layers in params["heads"].items():
        total = total + module(layers, l1["heads"][name], l2["heads"][name])
    return total
