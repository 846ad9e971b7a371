"""The NestedAE paper's data sets, shipped inside the package (in the manner of
``sklearn.datasets``).

    >>> from nested_ae_jax import datasets
    >>> datasets.list_datasets()
    ['bandgaps', 'device_efficiencies', 'synthetic', 'synthetic_noisy']
    >>> datasets.load_bandgaps().shape
    (494, 55)

A config names one instead of a file: ``data = "dataset:bandgaps"``; ``data.read_table`` and
``config.resolve_data_path`` accept such a reference wherever a data path is accepted.

The CSV files (``data/``, 1.2 MB) were published with the NestedAE paper's code under the MIT
licence (``data/LICENSE-NestedAE-data.txt``); ``data/README.md`` cites their sources. They are
read through :mod:`importlib.resources`, so they load from a source tree, an installed wheel or
a zip file alike.
"""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING

from ..errors import DataError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd

#: A ``data`` value starting with this names a shipped data set: ``dataset:NAME``.
PREFIX = "dataset:"

#: Column names of the synthetic file, which has no header row.
SYNTHETIC_COLUMNS = tuple(f"f{i}" for i in range(1, 14))

#: name -> (file under data/, column names for a file without a header row, or ()).
_FILES: dict[str, tuple[str, tuple[str, ...]]] = {
    "bandgaps": ("PSC_bandgaps_dataset.csv", ()),
    "device_efficiencies": ("PSC_efficiencies_dataset.csv", ()),
    "synthetic": ("synthetic_data.csv", SYNTHETIC_COLUMNS),
    "synthetic_noisy": ("synthetic_data_FuncAddNoise_200.csv", ()),
}


def list_datasets() -> list[str]:
    """Names of the shipped data sets (for ``load`` and ``data = "dataset:NAME"``)."""
    return list(_FILES)


def is_reference(data: object) -> bool:
    """Whether a ``data`` value (str or path) names a shipped data set (``dataset:NAME``)."""
    return str(data).startswith(PREFIX)


def dataset_name(ref: str) -> str:
    """The checked NAME of ``"dataset:NAME"`` (or of a bare NAME); an unknown name is a
    DataError listing the known ones."""
    name = str(ref).removeprefix(PREFIX).strip()
    if name not in _FILES:
        raise DataError(f"unknown data set '{name}'{did_you_mean(name, _FILES)}; shipped data "
                        f"sets: {', '.join(_FILES)} (write data = \"{PREFIX}NAME\")")
    return name


def load(name: str, column_names: tuple[str, ...] = ()) -> pd.DataFrame:
    """A shipped data set as a DataFrame, by NAME or ``"dataset:NAME"``; ``column_names``
    (a config's) rename its columns and must match their number."""
    import pandas as pd  # here: config imports this module, and the CLI starts without pandas

    file, names = _FILES[dataset_name(name)]
    with (files(__name__) / "data" / file).open("rb") as stream:
        frame = pd.read_csv(stream, header=None if names else "infer", names=list(names) or None)
    if column_names:
        if len(column_names) != frame.shape[1]:
            raise DataError(f"{PREFIX}{dataset_name(name)} has {frame.shape[1]} columns but "
                            f"column_names gives {len(column_names)}; give one name per column "
                            "or leave column_names out")
        frame.columns = list(column_names)
    return frame


def load_bandgaps() -> pd.DataFrame:
    """DFT-PBE band gaps of 494 pseudo-cubic ABX3 halide perovskite alloys (494 rows x 55
    columns; ``dataset:bandgaps``), the NestedAE paper's scale 1 (AE1).

    Columns that matter: ``Gap`` (the target, eV); site fractions ``K, Rb, Cs, MA, FA`` (A),
    ``Ca, Sr, Ba, Ge, Sn, Pb`` (B), ``Cl, Br, I`` (X), each site summing to 1; 12
    composition-weighted elemental properties per site, ``A_ion_rad, A_BP, A_MP, A_dens,
    A_at_wt, A_EA, A_IE, A_hof, A_hov, A_En, A_at_num, A_period`` and the same for ``B_`` and
    ``X_`` (AE1 uses ion_rad, at_wt, EA, IE, En of each site); ``Formula``.

    Source: A. Mannodi-Kanakkithodi & M. K. Y. Chan, Energy Environ. Sci. 2022, 15, 1930
    (doi 10.1039/D1EE02971A). MIT licence, as published with the NestedAE paper's code.
    """
    return load("bandgaps")


def load_device_efficiencies() -> pd.DataFrame:
    """Perovskite solar cells filtered from the Perovskite Database (2018 rows x 70 columns;
    ``dataset:device_efficiencies``), the NestedAE paper's scale 2 (AE2): 3-D ABX3
    single-junction cells, one-step spin-coated, quenched, AM1.5 reverse-scan JV.

    Columns that matter: ``JV_reverse_scan_PCE`` (the target, power conversion efficiency, %);
    composition descriptors ``A_ion_radius, A_atom_wt, A_EA, A_IE, A_EN`` and the same for
    ``B_`` and ``C_`` (C = the X site; AE1's 15 inputs under other names); ion lists ``a_1..a_4,
    b_1..b_2, c_1..c_2`` with coefficients ``a_1_coeff ..``; ``ETL_stack_sequence`` (7
    classes) and ``HTL_stack_sequence`` (4 classes). Only 343 distinct (composition, ETL, HTL)
    rows: random folds leak repeated recipes.

    Source: T. J. Jacobsson et al., Nat. Energy 2022, 7, 107 (doi 10.1038/s41560-021-00941-3).
    MIT licence, as published with the NestedAE paper's code.
    """
    return load("device_efficiencies")


def load_synthetic(noisy: bool = False) -> pd.DataFrame:
    """The NestedAE paper's synthetic nested-function data, 200 rows (``dataset:synthetic``,
    ``dataset:synthetic_noisy``).

    ``noisy=False``: 13 columns ``f1..f13`` (the file has no header row; the names are given
    here). ``noisy=True``: 18 columns, ``z1..z5`` (the generating variables, not inputs) then
    noisy ``f1..f13``. The paper's AE1 autoencodes f1..f4, AE2 f5..f13 plus AE1's latents;
    values are dimensionless.

    Source: Thota, Sharma Priyadarshini & Hernandez, Mater. Horiz. 2024, 11, 700 (doi
    10.1039/D3MH01484C). MIT licence.
    """
    return load("synthetic_noisy" if noisy else "synthetic")
