"""Configuration: a TOML file parsed once into frozen dataclasses, validated with clear errors.

One module per job: ``schema`` (the keys, as frozen dataclasses), ``parse`` (TOML -> Config,
types and values checked), ``validate`` (cross-field rules), ``modules`` (module references),
``paths`` (where a data file is), ``overrides`` (the config as a dict; ``--set`` copies) and
``reference`` (the generated key table). Every public name is re-exported here.
"""

from .modules import map_modules, resolve_module, split_module_reference
from .overrides import config_to_dict, lookup, override, parse_value, replace_scale
from .parse import load_config, parse_config
from .paths import resolve_data_path
from .reference import key_reference
from .schema import (ACTIVATIONS, BUILTIN_KEYS, CV_KINDS, FEEDS, HEAD_KINDS, INITS, INPUT_KINDS,
                     LOSSES, MODULE_DOC, OPTIONS_DOC, SCALER_FITS, SPLIT_MODES,
                     TRANSFER_SCALERS, ChainSpec, Config, CVSpec, EncoderSpec, HeadSpec,
                     InputGroup, ScaleSpec, TrainingSpec)
from .validate import validate

__all__ = [
    "ACTIVATIONS", "BUILTIN_KEYS", "CV_KINDS", "FEEDS", "HEAD_KINDS", "INITS", "INPUT_KINDS",
    "LOSSES", "MODULE_DOC", "OPTIONS_DOC", "SCALER_FITS", "SPLIT_MODES", "TRANSFER_SCALERS",
    "CVSpec", "ChainSpec", "Config", "EncoderSpec", "HeadSpec", "InputGroup", "ScaleSpec",
    "TrainingSpec", "config_to_dict", "key_reference", "load_config", "lookup", "map_modules",
    "override", "parse_config", "parse_value", "replace_scale", "resolve_data_path",
    "resolve_module", "split_module_reference", "validate",
]
