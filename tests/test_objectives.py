"""One objective language for design, suggest and campaign (nested_ae_jax.objectives): every
written form of a goal parses to the same Objective, the three commands take the same flags,
and bad text is a one-line error naming it."""
import numpy as np
import pytest

from nested_ae_jax.cli import build_parser
from nested_ae_jax.cli.objective import objectives_of
from nested_ae_jax.errors import ConfigError
from nested_ae_jax.objectives import Objective, parse_objective, utility

GAP = Objective("atomic.gap", "target", 1.0, 1.34)


@pytest.mark.parametrize("text, kind", [("atomic.gap=1.34", "target"),
                                        ("target:atomic.gap=1.34", None),
                                        ("target = 1.34 : atomic.gap", None),
                                        ("target:atomic.gap = 1.34", "target")])
def test_every_form_of_a_target_is_the_same_objective(text, kind):
    assert parse_objective(text, kind) == GAP


def test_kinds_weights_and_bare_kinds():
    assert parse_objective("device.pce") == Objective("device.pce", "max")
    assert parse_objective("min:2*device.pce") == Objective("device.pce", "min", 2.0)
    assert parse_objective("2*device.pce", "min") == Objective("device.pce", "min", 2.0)
    assert parse_objective("min") == Objective("", "min")
    assert parse_objective("target=0.5") == Objective("", "target", 1.0, 0.5)
    assert GAP.describe() == "atomic.gap closest to 1.34"
    assert Objective("device.pce", "min", 2.0).describe() == "min 2*device.pce"


@pytest.mark.parametrize("text, message", [("best:device.pce", "kind must be max, min"),
                                           ("maximum", "SCALE.HEAD"),
                                           ("target:atomic.gap", "needs SCALE.HEAD=VALUE"),
                                           ("0*device.pce", "weight must be > 0")])
def test_bad_text_is_a_one_line_error_naming_it(text, message):
    with pytest.raises(ConfigError, match=message) as e:
        parse_objective(text)
    assert f"'{text}'" in str(e.value) and "\n" not in str(e.value)


def test_utility_is_higher_for_better_values():
    y = np.array([0.5, 1.3, 2.0])
    assert np.argmax(utility(Objective(kind="max"), y)) == 2
    assert np.argmax(utility(Objective(kind="min"), y)) == 0
    assert np.argmax(utility(GAP, y)) == 1


@pytest.mark.parametrize("flags", [["--target", "atomic.gap=1.34"],
                                   ["--objective", "target:atomic.gap=1.34"],
                                   ["--objective", "target=1.34:atomic.gap"]])
def test_design_suggest_and_campaign_take_the_same_flags(flags):
    parser = build_parser()
    for head in (["design", "RUN"], ["suggest", "RUN", "--out", "x.csv"],
                 ["campaign", "c.toml", "--out", "d"]):
        assert objectives_of(parser.parse_args(head + flags)) == [GAP], head


def test_design_sums_several_terms_and_the_others_take_one():
    parser = build_parser()
    args = parser.parse_args(["design", "RUN", "--maximize", "device.pce", "--minimize",
                              "0.5*atomic.gap", "--objective", "target:atomic.gap=1.3"])
    assert objectives_of(args) == [Objective("device.pce"), Objective("atomic.gap", "min", 0.5),
                                   Objective("atomic.gap", "target", 1.0, 1.3)]
    for cmd in (["suggest", "RUN", "--out", "x.csv"], ["campaign", "c.toml", "--out", "d"]):
        with pytest.raises(SystemExit):
            parser.parse_args(cmd + ["--maximize", "device.pce", "--minimize", "atomic.gap"])


def test_a_prefix_that_contradicts_its_flag_is_refused():
    parser = build_parser()
    for flags in (["--minimize", "max:atomic.gap"], ["--maximize", "target=1.3:atomic.gap"]):
        with pytest.raises(ConfigError, match="was given to the"):
            objectives_of(parser.parse_args(["design", "RUN", *flags]))
    agreeing = parser.parse_args(["design", "RUN", "--minimize", "min:atomic.gap"])
    assert objectives_of(agreeing) == [Objective("atomic.gap", "min")]
