"""Compositions of ABX3 perovskites -> composition-weighted descriptors, through a per-ion table.

The band-gap data set (METHOD.md §2) stores site fractions (columns ``K .. I``, each site sums
to 1) and 12 composition-weighted elemental properties per site (``A_ion_rad, A_BP, ...``).
Rows where a site is *pure* (one ion at fraction 1) give that ion's property values directly;
:func:`ion_table` collects them. A descriptor is then ``fractions @ table``: the fraction-
weighted mean of the ions' properties on that site (the data's own convention; checked in
``tests/test_composition.py``, which rebuilds every descriptor column from the fractions).

The device data set (§3) stores the same physical quantities under other names, and its own
conventions (verified by the tests):

* the X site is called ``C`` (``C_ion_radius``, ``c_1``, ``c_1_coeff``);
* properties are ``ion_radius, atom_wt, EA, IE, EN`` (band-gap file: ``ion_rad, at_wt, EA, IE,
  En``);
* ions are listed in ``a_1..a_4``, ``b_1..b_2``, ``c_1..c_2`` with coefficients
  ``a_1_coeff ..``; empty slots read ``na``, and names after the first carry a leading space
  (``" FA"``);
* A and B coefficients sum to 1, X ("C") coefficients sum to 3 (formula units), and the
  descriptors are the coefficient-weighted *mean* (coefficient / 3 on the X site), not a sum;
* the device file's per-ion values carry one more digit than the band-gap file's (e.g. IE of
  MA 926.3 vs 926, of I 1008.4 vs 1010): the band-gap file rounds to 3 significant figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError

#: Ions of each site in the band-gap data set (METHOD.md §2), in its column order.
SITES: dict[str, tuple[str, ...]] = {
    "A": ("K", "Rb", "Cs", "MA", "FA"),
    "B": ("Ca", "Sr", "Ba", "Ge", "Sn", "Pb"),
    "X": ("Cl", "Br", "I"),
}
#: The 12 elemental properties per site of the band-gap file.
PROPERTIES: tuple[str, ...] = ("ion_rad", "BP", "MP", "dens", "at_wt", "EA", "IE", "hof", "hov",
                               "En", "at_num", "period")
#: Device file: site letter and property names of the band-gap file's descriptors.
DEVICE_SITE = {"A": "A", "B": "B", "X": "C"}
DEVICE_PROPERTY = {"ion_rad": "ion_radius", "at_wt": "atom_wt", "EA": "EA", "IE": "IE",
                   "En": "EN"}
#: Ion-list columns of the device file per site, and the sum of each site's coefficients.
DEVICE_SLOTS = {"A": ("a_1", "a_2", "a_3", "a_4"), "B": ("b_1", "b_2"), "X": ("c_1", "c_2")}
DEVICE_STOICHIOMETRY = {"A": 1.0, "B": 1.0, "X": 3.0}

#: The shipped band-gap data set (``nested_ae_jax.datasets``): the default per-ion table.
BANDGAP_FILE = "dataset:bandgaps"


@dataclass(frozen=True)
class CompositionSpace:
    """Sites, their ions and each ion's property values.

    ``ions`` lists every ion once, site by site (ion names are unique across sites);
    ``table[i, j]`` is property ``properties[j]`` of ``ions[i]``. A descriptor column is named
    ``SITE_PROPERTY`` (e.g. ``A_ion_rad``).
    """

    sites: tuple[tuple[str, tuple[str, ...]], ...]
    properties: tuple[str, ...]
    table: np.ndarray

    @property
    def ions(self) -> tuple[str, ...]:
        return tuple(i for _, ions in self.sites for i in ions)

    @property
    def site_names(self) -> tuple[str, ...]:
        return tuple(s for s, _ in self.sites)

    def site_slices(self) -> dict[str, slice]:
        out, start = {}, 0
        for s, ions in self.sites:
            out[s] = slice(start, start + len(ions))
            start += len(ions)
        return out

    def site_index(self) -> np.ndarray:
        """(n_ions,) index of each ion's site."""
        return np.concatenate([np.full(len(ions), k) for k, (_, ions) in enumerate(self.sites)])

    def site_of(self, ion: str) -> str:
        for s, ions in self.sites:
            if ion in ions:
                return s
        raise DataError(f"unknown ion '{ion}'; the composition table has "
                        f"{', '.join(self.ions)}")

    def covers(self, column: str) -> bool:
        site, _, prop = column.partition("_")
        return site in self.site_names and prop in self.properties

    def weights(self, columns: list[str] | tuple[str, ...]) -> np.ndarray:
        """(n_ions, len(columns)) matrix W with ``descriptors = fractions @ W``."""
        w = np.zeros((len(self.ions), len(columns)))
        slices = self.site_slices()
        for j, c in enumerate(columns):
            if not self.covers(c):
                raise DataError(f"descriptor column '{c}' is not SITE_PROPERTY with a site in "
                                f"{list(self.site_names)} and a property in "
                                f"{list(self.properties)}")
            site, _, prop = c.partition("_")
            sl = slices[site]
            w[sl, j] = self.table[sl, self.properties.index(prop)]
        return w

    def descriptors(self, fractions: np.ndarray, columns: list[str] | tuple[str, ...]
                    ) -> np.ndarray:
        """(N, n_ions) site fractions -> (N, len(columns)) composition-weighted descriptors."""
        return np.asarray(fractions) @ self.weights(columns)

    def fractions_from_frame(self, frame: pd.DataFrame, normalise: bool = False) -> np.ndarray:
        """(N, n_ions) from one fraction column per ion (band-gap file convention);
        ``normalise`` divides each site by its sum (the file's fractions are rounded to 3
        decimals, so some sites sum to 1.004)."""
        missing = [i for i in self.ions if i not in frame.columns]
        if missing:
            raise DataError(f"no fraction column for ion(s) {missing}")
        f = frame[list(self.ions)].to_numpy(np.float64)
        if normalise:
            for sl in self.site_slices().values():
                f[:, sl] /= f[:, sl].sum(axis=1, keepdims=True)
        return f

    def formula(self, fractions: np.ndarray, digits: int = 3) -> str:
        """'Cs0.25FA0.75SnI3'-style formula of one composition (X site x3)."""
        parts = []
        for (site, ions), sl in zip(self.sites, self.site_slices().values()):
            mult = 3.0 if site == "X" else 1.0
            for ion, f in zip(ions, fractions[sl]):
                if f > 0:
                    v = f * mult
                    parts.append(ion if abs(v - 1) < 10 ** -digits else
                                 f"{ion}{float(f'{v:.{digits}g}'):g}")
        return "".join(parts)


def ion_table(frame: pd.DataFrame, sites: dict[str, tuple[str, ...]] | None = None,
              properties: tuple[str, ...] = PROPERTIES, source: str = "<data>",
              rtol: float = 1e-6) -> CompositionSpace:
    """Per-ion property table from rows where a site is pure (that ion's fraction is 1).

    Every ion must have at least one pure row, and all its pure rows must agree (``rtol``).
    ``sites``: {SITE: ions}; default: the sites of :data:`SITES` whose ion columns all exist.
    """
    if sites is None:
        sites = {s: ions for s, ions in SITES.items() if all(i in frame.columns for i in ions)}
        if not sites:
            raise DataError(f"{source}: no site-fraction columns ({', '.join(SITES['A'])}, ...)")
    rows = []
    for site, ions in sites.items():
        cols = [f"{site}_{p}" for p in properties]
        missing = [c for c in [*ions, *cols] if c not in frame.columns]
        if missing:
            raise DataError(f"{source}: no column '{missing[0]}' (needed for the per-ion "
                            "property table)")
        for ion in ions:
            pure = frame[np.isclose(frame[ion].to_numpy(np.float64), 1.0)]
            if pure.empty:
                raise DataError(f"{source}: ion '{ion}' has no row where site {site} is pure; "
                                "its properties cannot be derived")
            values = pure[cols].to_numpy(np.float64)
            spread = np.abs(values - values[0]).max(axis=0)
            bad = spread > rtol * np.maximum(np.abs(values[0]), 1e-12)
            if bad.any():
                raise DataError(f"{source}: pure-{ion} rows disagree on '{cols[int(bad.argmax())]}'"
                                f" (spread {spread[bad.argmax()]:.4g})")
            rows.append(values[0])
    return CompositionSpace(tuple((s, tuple(i)) for s, i in sites.items()), tuple(properties),
                            np.array(rows))


def load_space(path: str | Path = BANDGAP_FILE) -> CompositionSpace:
    """The per-ion table of the band-gap data file at ``path`` (default: the shipped one)."""
    from .data import read_table

    return ion_table(read_table(path), source=str(path))


def device_fractions(frame: pd.DataFrame, space: CompositionSpace, source: str = "<data>"
                     ) -> np.ndarray:
    """(N, n_ions) site fractions from the device file's ion lists and coefficients
    (coefficients / site stoichiometry: X ("c_*") coefficients sum to 3)."""
    out = np.zeros((len(frame), len(space.ions)))
    index = {ion: i for i, ion in enumerate(space.ions)}
    for site, slots in DEVICE_SLOTS.items():
        for slot in slots:
            if slot not in frame.columns:
                continue
            names = frame[slot].astype(str).str.strip()
            coeff = pd.to_numeric(frame[f"{slot}_coeff"], errors="coerce").fillna(0).to_numpy()
            for row, (name, c) in enumerate(zip(names, coeff)):
                if name in ("na", "nan", "") or c == 0:
                    continue
                if name not in index or space.site_of(name) != site:
                    raise DataError(f"{source}: column '{slot}' row {row + 2} names ion "
                                    f"'{name}', not an ion of site {site}")
                out[row, index[name]] += c / DEVICE_STOICHIOMETRY[site]
    return out


def device_columns(columns: list[str] | tuple[str, ...]) -> list[str]:
    """Band-gap descriptor names -> the device file's names (``X_En`` -> ``C_EN``)."""
    out = []
    for c in columns:
        site, _, prop = c.partition("_")
        out.append(f"{DEVICE_SITE.get(site, site)}_{DEVICE_PROPERTY.get(prop, prop)}")
    return out
