"""Pure numeric pieces of the explanations: latent activity, correlations, 2-D maps, elbows.

Nothing here trains or reads files; every function takes arrays and returns arrays or tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

INACTIVE_REL_STD = 0.1
"""A latent is *inactive* when its standard deviation over the data is below this fraction of
the largest latent standard deviation of the same model (it barely varies, so it carries
almost no information to the heads or to the next scale)."""

ELBOW_FRAC = 0.1
"""Elbow of a latent-size scan: the smallest size whose error is within this fraction of the
error range (worst - best) above the best error."""


def latent_activity(latent: np.ndarray, threshold: float = INACTIVE_REL_STD) -> pd.DataFrame:
    """Per latent unit, measured on the latent itself (so for any encoder): std over the rows
    of ``latent`` (N, L), rel_std (std / the largest std), mean_abs (mean |value|) and
    ``active`` = rel_std >= ``threshold``."""
    z = np.asarray(latent, np.float64)
    if z.ndim != 2:
        raise ValueError(f"latent must be (N, L), got {z.shape}")
    std = z.std(axis=0)
    top = std.max()
    rel = std / top if top > 0 else np.zeros_like(std)
    return pd.DataFrame({"latent": [f"latent_{j}" for j in range(z.shape[1])],
                         "std": std, "rel_std": rel, "mean_abs": np.abs(z).mean(axis=0),
                         "active": rel >= threshold})


def pearson_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """Pearson correlation of every pair of columns (float64); NaN for a constant column."""
    x = frame.to_numpy(np.float64)
    x = x - x.mean(axis=0)
    norm = np.sqrt((x**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = np.where(norm > 1e-12 * np.maximum(1.0, np.abs(x).max(axis=0)), 1.0 / norm,
                        np.nan)
        r = (x * unit).T @ (x * unit)
    r = np.clip(r, -1.0, 1.0)
    return pd.DataFrame(r, index=frame.columns, columns=frame.columns)


def adjusted_correlation(r: pd.DataFrame | np.ndarray, n: int) -> pd.DataFrame | np.ndarray:
    """The later NestedAE work's significance-adjusted correlation: max(0, (|r| - SE) /
    (1 - SE)) with SE = 1/sqrt(n - 3) (the standard error of Fisher's z), so correlations
    within one standard error of 0 become 0 and |r| = 1 stays 1. NaN stays NaN."""
    if n <= 4:
        raise ValueError(f"adjusted correlation needs more than 4 rows, got {n}")
    se = 1.0 / np.sqrt(n - 3)
    values = np.asarray(r, np.float64)
    with np.errstate(invalid="ignore"):
        adj = np.maximum(0.0, (np.abs(values) - se) / (1.0 - se))
    adj = np.where(np.isnan(values), np.nan, adj)
    if isinstance(r, pd.DataFrame):
        return pd.DataFrame(adj, index=r.index, columns=r.columns)
    return adj


def pca_2d(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first two principal components of ``z`` (N, L >= 2), by SVD of the centred data:
    coordinates (N, 2) and the fraction of the total variance each explains (2,). Component
    signs are fixed so that the largest-magnitude loading is positive (deterministic)."""
    x = np.asarray(z, np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"need (N, L >= 2) latents, got {x.shape}")
    x = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    vt = vt[:2] * np.sign(vt[:2][np.arange(2), np.abs(vt[:2]).argmax(axis=1)])[:, None]
    total = (s**2).sum()
    ratio = (s[:2] ** 2) / total if total > 0 else np.zeros(2)
    return x @ vt.T, ratio


def latent_map(z: np.ndarray, method: str = "auto", seed: int = 0
               ) -> tuple[np.ndarray, tuple[str, str], str]:
    """2-D coordinates of latents ``z`` (N, L) for a map: the latent itself when L == 2 (or
    L == 1: latent against zero); else PCA, or UMAP when ``method`` is "umap" or "auto" and
    ``umap-learn`` is importable. Returns coordinates, axis labels and the method used."""
    x = np.asarray(z, np.float64)
    if x.shape[1] == 1:
        return np.column_stack([x[:, 0], np.zeros(len(x))]), ("latent_0", "(constant)"), \
            "latent"
    if x.shape[1] == 2:
        return x, ("latent_0", "latent_1"), "latent"
    if method in ("auto", "umap"):
        try:
            import umap  # type: ignore
        except ImportError:
            if method == "umap":
                raise ImportError("method 'umap' needs the umap-learn package") from None
        else:
            coords = umap.UMAP(n_components=2, random_state=seed).fit_transform(x)
            return np.asarray(coords, np.float64), ("UMAP 1", "UMAP 2"), "umap"
    coords, ratio = pca_2d(x)
    return coords, (f"PC1 ({100 * ratio[0]:.0f}% var.)", f"PC2 ({100 * ratio[1]:.0f}% var.)"), \
        "pca"


def elbow(sizes, errors, frac: float = ELBOW_FRAC) -> int:
    """The elbow of an error-vs-latent-size curve: the smallest size whose error is at most
    best + frac * (worst - best), where best/worst are the smallest/largest errors over all
    sizes. ``errors``: one value per size (e.g. the mean over folds)."""
    s = np.asarray(sizes)
    e = np.asarray(errors, np.float64)
    if s.shape != e.shape or s.size == 0:
        raise ValueError("sizes and errors must be non-empty and of the same length")
    order = np.argsort(s)
    s, e = s[order], e[order]
    best, worst = np.nanmin(e), np.nanmax(e)
    ok = e <= best + frac * (worst - best)
    return int(s[np.argmax(ok)])
