"""Linear algebra of the GP, in XLA (no LAPACK custom calls): the Cholesky factor of an SPD
matrix with its inverse by a recursive 2x2-block algorithm of batched matmuls, and the Gaussian
log density with a hand-written gradient (``(alpha alpha^T - K^-1) / 2``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

_LOG_2PI = float(np.log(2 * np.pi))


# ---------------------------------------------------------------------------------------------
# linear algebra: Cholesky factor and its inverse, in XLA (no LAPACK custom calls)
#
# Measured on the shared 2-core CPU with jax 0.10.2: jaxlib's LAPACK Cholesky and triangular
# solves, vmapped over hundreds of matrices, were erratic: the same call on the same input took
# 0.3 s or 18 s of *CPU* time (threads spinning: the machine was busy), and a triangular solve
# with a matrix right-hand side was 3-10x slower than a matmul even when it behaved. Here the
# factor and its inverse come from a recursive 2x2-block algorithm made of batched matmuls,
# with blocks of at most ``leaf`` rows done by column/row loops; everything downstream is a
# matmul with the inverse factor.


def _chol_inv_small(cov: Array) -> tuple[Array, Array]:
    n = cov.shape[-1]
    rows = jnp.arange(n)
    eye = jnp.eye(n, dtype=cov.dtype)

    def column(j, chol):
        v = cov[:, j] - chol @ chol[j, :]
        return chol.at[:, j].set(jnp.where(rows >= j, v / jnp.sqrt(v[j]), 0.0))

    chol = jax.lax.fori_loop(0, n, column, jnp.zeros_like(cov))

    def row(i, inv):
        return inv.at[i].set((eye[i] - chol[i] @ inv) / chol[i, i])

    return chol, jax.lax.fori_loop(0, n, row, jnp.zeros_like(cov))


def cholesky_and_inverse(cov: Array, leaf: int = 64) -> tuple[Array, Array]:
    """Lower Cholesky factor L (n, n) of an SPD cov (n, n), and L^-1 (n, n).

    ``[[A, B^T], [B, C]]``: L11 = chol(A), L21 = B L11^-T, L22 = chol(C - L21 L21^T), and
    ``[[L11, 0], [L21, L22]]^-1 = [[L11^-1, 0], [-L22^-1 L21 L11^-1, L22^-1]]``. NaN where cov is
    not positive definite (like ``jnp.linalg.cholesky``)."""
    n = cov.shape[-1]
    if n <= leaf:
        return _chol_inv_small(cov)
    h = 1 << (int(np.ceil(np.log2(n))) - 1)
    l11, i11 = cholesky_and_inverse(cov[:h, :h], leaf)
    l21 = cov[h:, :h] @ i11.T
    l22, i22 = cholesky_and_inverse(cov[h:, h:] - l21 @ l21.T, leaf)
    i21 = -(i22 @ (l21 @ i11))
    zero = jnp.zeros((h, n - h), cov.dtype)
    return jnp.block([[l11, zero], [l21, l22]]), jnp.block([[i11, zero], [i21, i22]])


# ---------------------------------------------------------------------------------------------
# Gaussian log density with a cheap gradient


@jax.custom_vjp
def _mvn_logpdf(cov: Array, resid: Array) -> Array:
    """log N(resid; 0, cov) for cov (n, n) SPD, resid (n,)."""
    return _mvn_logpdf_fwd(cov, resid)[0]


def _mvn_logpdf_fwd(cov, resid):
    chol, chol_inv = cholesky_and_inverse(cov)
    a = chol_inv @ resid
    value = (-0.5 * jnp.sum(a * a) - jnp.sum(jnp.log(jnp.diagonal(chol)))
             - 0.5 * resid.shape[0] * _LOG_2PI)
    return value, (chol_inv, chol_inv.T @ a)


def _mvn_logpdf_bwd(res, g):
    # d/dK = (alpha alpha^T - K^-1) / 2, d/dr = -alpha, with K^-1 = L^-T L^-1 (autodiff through
    # a Cholesky was ~15x the forward pass here).
    chol_inv, alpha = res
    cov_inv = chol_inv.T @ chol_inv
    return g * 0.5 * (jnp.outer(alpha, alpha) - cov_inv), -g * alpha


_mvn_logpdf.defvjp(_mvn_logpdf_fwd, _mvn_logpdf_bwd)
