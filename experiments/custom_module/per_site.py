"""A per-site encoder for the perovskite band gap, as a user Flax (linen) module.

AE1's 15 composition descriptors are 5 per site, in the order A, B, X (ionic radius, atomic
weight, electron affinity, ionisation energy, electronegativity of each site's mean ion).
This encoder gives every site its own small network, concatenates the three site embeddings
and projects them to the latent:

    x (N, 15) -> [A (N, 5), B (N, 5), X (N, 5)] -> site MLPs -> (N, 3 * site_width)
      -> dropout -> Dense -> tanh -> latent (N, out_features)

Used by per_site_bandgap.toml: ``module = "per_site.py:make_encoder"``. The factory is called
as ``make_encoder(out_features=LATENT_SIZE, **options)``; dropout draws from the "dropout"
rng that nested_ae_jax passes on every training step.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


class PerSiteEncoder(nn.Module):
    out_features: int
    sites: tuple[str, ...] = ("A", "B", "X")
    hidden: int = 16
    site_width: int = 8
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        parts = jnp.split(x, len(self.sites), axis=-1)  # equal columns per site
        embeddings = []
        for site, part in zip(self.sites, parts):
            h = nn.tanh(nn.Dense(self.hidden, name=f"site_{site}_hidden")(part))
            embeddings.append(nn.tanh(nn.Dense(self.site_width, name=f"site_{site}")(h)))
        h = jnp.concatenate(embeddings, axis=-1)
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
        return jnp.tanh(nn.Dense(self.out_features, name="project")(h))


def make_encoder(out_features: int, **options) -> nn.Module:
    return PerSiteEncoder(out_features=out_features, **options)
