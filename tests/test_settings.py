"""Settings are checked once, where they are defined: the domains, and the training and test settings refusing
bad values from the Python API and the command line alike, before anything is built or written."""

from __future__ import annotations

import argparse
import math

import pytest

from regnet_explore.cli import main
from regnet_explore.errors import RegNetExploreError
from regnet_explore.evaluation.testing import TestConfig
from regnet_explore.settings import COUNT, COUNT_0, POSITIVE, PROBABILITY, SEED, Domain
from regnet_explore.train.engine import TrainConfig


@pytest.mark.parametrize(("domain", "good", "bad"), [
    (COUNT, [1, 7, 10**9], [0, -1, 1.5, True, None, "3"]),
    (COUNT_0, [0, 3], [-1, 0.5]),
    (SEED, [0, 2**32 - 1], [-1, 2**32]),
    (POSITIVE, [1e-9, 3, 2.5], [0, 0.0, -1.0, math.nan, math.inf]),
    (PROBABILITY, [0, 0.5, 1], [-0.1, 1.01, math.nan]),
])
def test_domains_hold_what_they_say(domain, good, bad):
    assert all(domain.contains(v) for v in good)
    assert not any(domain.contains(v) for v in bad)
    assert all(not domain.contains(domain.kind(float(t)) if domain.kind is float else _int_or_none(t))
               for t in domain.bad_values())


def _int_or_none(text: str):
    try:
        return int(text)
    except ValueError:
        return None


def test_domain_messages_and_parsing():
    assert COUNT.describe() == "a whole number >= 1"
    assert POSITIVE.describe() == "a number > 0"
    assert PROBABILITY.describe() == "a number in [0, 1]"
    assert Domain(int, 1, 5).describe() == "a whole number in [1, 5]"
    assert COUNT.parse("4") == 4 and PROBABILITY.parse("0.25") == 0.25
    for domain, text in ((COUNT, "0"), (COUNT, "1e30"), (POSITIVE, "nan"), (PROBABILITY, "2")):
        with pytest.raises(argparse.ArgumentTypeError, match=f"'{text}' is not a"):
            domain.parse(text)


@pytest.mark.parametrize(("settings", "message"), [
    (dict(epochs=0), "epochs must be a whole number >= 1, got 0"),
    (dict(batch_size=0), "batch_size must be a whole number >= 1, got 0"),
    (dict(lr=-1e-3), "lr must be a number > 0, got -0.001"),
    (dict(seed=-1), "seed must be a whole number in [0, 4294967295], got -1"),
    (dict(flip_vertical=1.5), "flip_vertical must be a number in [0, 1], got 1.5"),
    (dict(translation_std=(0.0, -1.0, 0.0)), "translation_std must be three stds >= 0"),
    (dict(crop_placement="corner"), "crop_placement must be one of center, random, objects, got 'corner'"),
])
def test_training_settings_refuse_bad_values(settings, message):
    with pytest.raises(RegNetExploreError) as e:
        TrainConfig(**settings)
    assert str(e.value).startswith(message)


def test_test_settings_refuse_bad_values():
    with pytest.raises(RegNetExploreError, match="batch_size must be a whole number >= 1, got 0"):
        TestConfig("regnet-400mf-fpn-nus", None, batch_size=0)
    with pytest.raises(RegNetExploreError, match=r"score_thr must be a number in \[0, 1\], got nan"):
        TestConfig("regnet-400mf-fpn-nus", None, score_thr=math.nan)


@pytest.mark.parametrize("argv", [["train", "regnet-400mf-fpn-nus", "--batch-size", "0"],
                                  ["train", "regnet-400mf-fpn-nus", "--epochs", "0"],
                                  ["test", "regnet-400mf-fpn-nus", "--batch-size", "0"]])
def test_the_command_line_gives_one_line_and_writes_nothing(argv, tmp_path, capsys):
    out = tmp_path / "out"
    option = "--work-dir" if argv[0] == "train" else "--out"
    assert main([*argv, option, str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"regnet-explore {argv[0]}: error: argument {argv[2]}: '0' is not a whole number >= 1"]
    assert not out.exists()
