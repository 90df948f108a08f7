"""Every shipped YAML parses against the code's signatures, so a renamed argument cannot break a config."""

import contextlib
import io
from pathlib import Path

import pytest
from conftest import ROOT

from compacter_pl.cli import main

CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if "sweeps" not in p.parts)


@pytest.mark.parametrize("config", CONFIGS, ids=[str(p.relative_to(ROOT / "configs")) for p in CONFIGS])
def test_config_parses_with_print_config(config: Path):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    assert "model_name_or_path" in out.getvalue()


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
