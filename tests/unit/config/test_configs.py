"""Every shipped YAML parses against the code's signatures, so a renamed argument cannot break a config."""

import contextlib
import io
from pathlib import Path

import pytest

from compacter_pl.cli import main
from compacter_pl.config import parse_run, run_parser
from compacter_pl.errors import UserError
from tests.helpers import ROOT

CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if "sweeps" not in p.parts)


@pytest.fixture(scope="module")
def parse():
    return run_parser()


@pytest.mark.parametrize("config", CONFIGS, ids=[str(p.relative_to(ROOT / "configs")) for p in CONFIGS])
def test_config_parses(config: Path, parse):
    assert parse(["fit", "--config", str(config)])["model"]["model_name_or_path"]


def test_a_config_prints_with_print_config():
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(ROOT / "configs" / "rte_compacter.yaml"), "--print_config"])
    assert exit_info.value.code in (0, None)
    assert "model_name_or_path" in out.getvalue()


def test_one_parser_parses_many_runs_as_a_fresh_parser_each(parse):
    """The sweep parses every run with one parser: an earlier parse, or a failed one, must not change a later."""
    compacter = ["fit", "--config", str(ROOT / "configs" / "rte_compacter.yaml"), "--model.learning_rate=0.01"]
    full = ["fit", "--config", str(ROOT / "configs" / "rte_full.yaml"), "--trainer.max_epochs=2"]
    first = parse(compacter)
    with pytest.raises(UserError, match="learnin_rate"):
        parse([*full, "--model.learnin_rate=1"])
    assert parse(full) == parse_run(full)
    assert parse(compacter) == first == parse_run(compacter)
    assert first["model"]["learning_rate"] == 0.01
    assert parse(full)["model"]["method"] != first["model"]["method"]


def test_every_config_starts_with_the_command_that_runs_it():
    for config in CONFIGS:
        assert "python cli.py" in config.read_text().split("\n\n")[0], config


def test_help_shows_the_docstrings():
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = out.getvalue()
    assert "Peak learning rate of AdamW" in text
    assert "Subsample the training split" in text
