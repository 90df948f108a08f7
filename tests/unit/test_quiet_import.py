"""Importing the library leaves the process's warnings and logging alone; the command line quiets them."""

import subprocess
import sys

from tests.helpers import ROOT

PROBE = """
import warnings, transformers, datasets
from compacter_pl.cli import QUIET_WARNINGS
def state():
    ours = [f for f in warnings.filters if f[1] is not None and any(m in f[1].pattern for m in QUIET_WARNINGS)]
    return ours, transformers.utils.logging.get_verbosity(), datasets.utils.logging.is_progress_bar_enabled()
before = state()
import compacter_pl.training, compacter_pl.data, compacter_pl.hub, compacter_pl.adapter_bank, compacter_pl.export
after = state()
print("same" if before == after and not after[0] else f"changed: {before} -> {after}")
from compacter_pl.cli import configure_runtime
configure_runtime()
after = state()
print(after[1] == transformers.utils.logging.ERROR, after[2], len(after[0]) == len(QUIET_WARNINGS))
"""


def test_importing_the_package_changes_no_global_state_and_the_cli_quiets_the_libraries():
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.split("\n")
    assert lines[0] == "same", lines[0]
    assert lines[1] == "True False True", lines[1]
