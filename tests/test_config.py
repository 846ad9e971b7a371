"""The TOML config: parsed once into frozen dataclasses; bad keys, types and values are errors
that name the key and the file."""

from __future__ import annotations

import dataclasses
import tomllib

import pytest

from conftest import REPO, tiny_scale
from nested_ae_jax import io
from nested_ae_jax.config import (config_to_dict, key_reference, load_config, parse_config,
                                  resolve_data_path)
from nested_ae_jax.errors import ConfigError


def cfg_with(**changes) -> dict:
    scale = tiny_scale()
    for path, value in changes.items():
        *parents, last = path.split(".")
        table = scale
        for p in parents:
            table = table[p]
        table[last] = value
    return {"scales": {"s": scale}}


def test_paper_ae1_config_encodes_the_paper_protocol():
    cfg = load_config(REPO / "experiments/perovskite/ae1_bandgap.toml")
    (atomic,) = cfg.scales
    assert atomic.name == "atomic"
    assert len(atomic.inputs[0].columns) == 15 and atomic.scaler == "all"
    assert (atomic.encoder.latent_size, atomic.encoder.l1) == (12, 0.01)
    gap = next(h for h in atomic.heads if h.name == "gap")
    assert (gap.hidden, gap.dropout, gap.output_activation, gap.loss_name) == \
        ((100,), 0.1, "relu", "mae")
    assert (atomic.training.epochs, atomic.training.batch_size,
            atomic.training.learning_rate) == (1500, 10, 1e-3)
    assert (atomic.cv.kind, atomic.cv.n_splits, atomic.cv.random_state) == ("kfold", 5, 0)


def test_config_is_frozen():
    cfg = parse_config(cfg_with())
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.scales[0].encoder.latent_size = 3


def test_resolved_config_round_trips_through_toml():
    cfg = load_config(REPO / "experiments/perovskite/nested_pce.toml")
    text = io.dumps_toml(config_to_dict(cfg))
    again = parse_config(tomllib.loads(text), cfg.source)
    assert again == cfg


@pytest.mark.parametrize("changes, message", [
    ({"encoder.latnt_size": 3}, "unknown key 'latnt_size' (did you mean 'latent_size'?)"),
    ({"encoder.latent_size": 0}, "scales.s.encoder.latent_size must be > 0"),
    ({"encoder.latent_size": "4"}, "latent_size must be an integer"),
    ({"encoder.hidden": [8, 0]}, "scales.s.encoder.hidden must be > 0"),
    ({"encoder.activation": "rellu"}, "did you mean 'relu'"),
    ({"heads.y.loss": "hinge"}, "heads.y.loss = 'hinge' is not one of"),
    ({"heads.x.input": "z"}, "input = 'z' is not an input group of scale 's'"),
    ({"heads.y.dropout": 1.0}, "dropout must be < 1.0"),
    ({"training.learning_rate": -1.0}, "learning_rate must be > 0"),
    ({"training.batch_size": True}, "batch_size must be an integer"),
    ({"cv.kind": "loo"}, "cv.kind = 'loo' is not one of"),
    ({"heads.y.kind": "regression", "heads.y.target": []}, "needs 'target'"),
])
def test_bad_values_name_the_key(changes, message):
    with pytest.raises(ConfigError) as err:
        parse_config(cfg_with(**changes), "my.toml")
    assert message in str(err.value)
    assert "my.toml" in str(err.value)


def test_unknown_top_level_key_and_missing_scales():
    with pytest.raises(ConfigError, match="unknown top-level key 'scale'"):
        parse_config({"scales": {"s": tiny_scale()}, "scale": {}})
    with pytest.raises(ConfigError, match=r"at least one \[scales.NAME\]"):
        parse_config({})


def test_links_must_name_an_earlier_scale():
    down = tiny_scale("d")
    down["inputs"]["up"] = {"kind": "latent", "scale": "nowhere"}
    with pytest.raises(ConfigError, match="'nowhere' is not a scale of this config"):
        parse_config({"scales": {"s": tiny_scale(), "d": down}})
    down["inputs"]["up"] = {"kind": "latent", "scale": "d"}
    with pytest.raises(ConfigError, match="cannot take its own latent"):
        parse_config({"scales": {"s": tiny_scale(), "d": down}})
    first = tiny_scale("a")
    first["inputs"]["up"] = {"kind": "latent", "scale": "b"}
    second = tiny_scale("b")
    second["inputs"]["up"] = {"kind": "latent", "scale": "a"}
    with pytest.raises(ConfigError, match="cycle or wrong order"):
        parse_config({"scales": {"a": first, "b": second}})


def test_a_chain_key_without_effect_is_refused():
    """chain.feed_fold only chooses the feeding fold of feed = "fold"; set beside another feed
    it would silently do nothing. Under matched folds it still picks the model that stands for
    a scale in explanations, so it is accepted there."""
    chain = {"split": "independent", "feed": "all_rows", "feed_fold": 2}
    with pytest.raises(ConfigError) as err:
        parse_config({"scales": {"s": tiny_scale()}, "chain": chain}, "my.toml")
    assert str(err.value) == ('my.toml: chain.feed_fold = 2 has no effect with chain.feed = '
                              '"all_rows" (it picks the feeding fold of feed = "fold"); remove it')
    for ok in ({**chain, "feed_fold": 0}, {**chain, "feed": "fold"},
               {"split": "matched", "feed_fold": 2}):
        assert parse_config({"scales": {"s": tiny_scale()}, "chain": ok}).chain.feed_fold \
            == ok["feed_fold"]


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[scales.s\n")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_config(bad)


def test_data_paths_resolve_data_root_then_env_then_config_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("NESTED_AE_DATA", raising=False)
    assert resolve_data_path("d.csv", tmp_path / "cfg") == (tmp_path / "cfg" / "d.csv")
    monkeypatch.setenv("NESTED_AE_DATA", str(tmp_path / "env"))
    assert resolve_data_path("d.csv", tmp_path / "cfg") == (tmp_path / "env" / "d.csv")
    assert resolve_data_path("d.csv", tmp_path / "cfg", tmp_path / "root") == \
        (tmp_path / "root" / "d.csv")
    assert resolve_data_path(str(tmp_path / "abs.csv"), None, "ignored") == tmp_path / "abs.csv"


def test_key_reference_documents_every_key():
    ref = key_reference()
    for key in ("latent_size", "batch_size", "feed", "rename", "group_by", "scaler",
                "checkpoint_every", "reference", "init_gain"):
        assert f"`{key}`" in ref


def test_docs_key_table_is_current():
    readme = (REPO / "docs" / "configuration.md").read_text()
    begin = readme.index("\n", readme.index("<!-- keys:begin")) + 1
    end = readme.index("<!-- keys:end")
    assert readme[begin:end].strip() == key_reference().strip(), \
        "docs/configuration.md key table is stale: paste the output of `nested-ae keys`"
