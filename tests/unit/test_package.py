"""The installed package: one version, the console script, its declared dependencies."""

import ast
import importlib.metadata
import sys
from pathlib import Path

import compacter_pl
from compacter_pl.cli import main
from tests.helpers import ROOT

# Import names that differ from their distribution's name.
DISTRIBUTIONS = {"yaml": "pyyaml", "lightning": "lightning", "jsonargparse": "jsonargparse"}


def test_one_version():
    assert importlib.metadata.version("compacter-pl") == compacter_pl.__version__


def test_console_script_is_the_cli_main():
    scripts = {e.name: e for e in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts["compacter-pl"].load() is main


def _imported_top_level_names(folder: Path) -> set[str]:
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_every_third_party_import_of_the_package_is_declared():
    requirements = importlib.metadata.requires("compacter-pl") or []
    declared = {  # the dependencies, and the optional extras a user installs for a feature (not the dev tools)
        r.split(";")[0].split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower()
        for r in requirements
        if "extra ==" not in r or 'extra == "dev"' not in r
    }
    third_party = _imported_top_level_names(ROOT / "compacter_pl") - set(sys.stdlib_module_names) - {"compacter_pl"}
    missing = {name for name in third_party if DISTRIBUTIONS.get(name, name).lower().replace("_", "-") not in declared}
    assert not missing, f"imported by compacter_pl but not in pyproject's dependencies: {sorted(missing)}"
