"""Spreading a batch of independent models over devices (and processes).

The model axis of a training call (folds x seeds x hyper-parameters) is sharded over a 1-D
``Mesh`` of every device with a ``NamedSharding``; the data are replicated. Models never talk
to each other, so the compiled program needs no communication: ``jit`` runs each device's
slice of models. With ``jax.distributed.initialize`` the mesh spans every process's devices
(multi-host); each process then holds its own slice and :func:`to_host` gathers results.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MODEL_AXIS = "models"


def model_mesh(devices: list | None = None) -> Mesh:
    """A 1-D mesh over ``devices`` (default: every device of every process)."""
    return Mesh(np.array(devices if devices is not None else jax.devices()), (MODEL_AXIS,))


def pad_models(tree: Any, n_pad: int) -> Any:
    """Append ``n_pad`` copies of model 0 on the leading axis (so it divides the mesh)."""
    if n_pad == 0:
        return tree
    return jax.tree.map(lambda a: np.concatenate([np.asarray(a),
                                                  np.repeat(np.asarray(a)[:1], n_pad, 0)]), tree)


def _place(a: Any, sharding: NamedSharding) -> jax.Array:
    a = np.asarray(a)
    if jax.process_count() == 1:
        return jax.device_put(a, sharding)
    # every process holds the whole host array; each contributes its addressable shards
    return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])


def shard_models(tree: Any, mesh: Mesh) -> Any:
    """Leaves with a leading model axis, split over the mesh."""
    sharding = NamedSharding(mesh, PartitionSpec(MODEL_AXIS))
    return jax.tree.map(lambda a: _place(a, sharding), tree)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Leaves copied whole onto every device of the mesh (the shared data set)."""
    sharding = NamedSharding(mesh, PartitionSpec())
    return jax.tree.map(lambda a: _place(a, sharding), tree)


def to_host(tree: Any) -> Any:
    """Every leaf as a whole numpy array on this host (gathered across processes)."""
    if jax.process_count() == 1:
        return jax.tree.map(np.asarray, tree)
    from jax.experimental import multihost_utils

    return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))
