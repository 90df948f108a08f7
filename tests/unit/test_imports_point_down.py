"""Imports point down: nothing in the package imports the command line, which only its entry points run; and the
one private LightningCLI hook the project overrides is still one Lightning calls."""

import ast
import inspect
import subprocess
import sys
from pathlib import Path

from lightning.pytorch.cli import LightningCLI

from tests.helpers import ROOT

PACKAGE = ROOT / "compacter_pl"
CLI_MODULE = "compacter_pl.cli"
TOOLS = "compacter_pl.tools"  # what drives the product (commands, sweep, report, bench): only the CLI imports it
ENTRIES = {"compacter_pl/cli.py", "compacter_pl/__main__.py"}  # the command line itself, and `python -m`


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module the source of `module` imports, at the top or inside a function (a lazy import is an import
    too), relative imports resolved; `from X import Y` counts as X and X.Y (Y may be a module)."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *filter(None, [node.module])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_no_module_of_the_package_imports_the_command_line():
    importers = set()
    for path in PACKAGE.rglob("*.py"):
        imports = imported_modules(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")
        if any(name == CLI_MODULE or name.startswith(CLI_MODULE + ".") for name in imports):
            importers.add(str(path.relative_to(ROOT)))
    assert importers - ENTRIES == set(), "import compacter_pl.config (parsing) instead of the CLI"


def test_nothing_below_the_tools_imports_them():
    importers = set()
    for path in PACKAGE.rglob("*.py"):
        if path.is_relative_to(PACKAGE / "tools"):
            continue
        imports = imported_modules(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")
        if any(name == TOOLS or name.startswith(TOOLS + ".") for name in imports):
            importers.add(str(path.relative_to(ROOT)))
    assert importers - ENTRIES == set(), "the core must not depend on the tools that drive it"


def test_the_import_check_sees_lazy_and_relative_imports():
    assert CLI_MODULE in imported_modules("def f():\n    from compacter_pl.cli import main\n", "compacter_pl.x")
    assert CLI_MODULE in imported_modules("from ... import cli\n", "compacter_pl.tools.sweep.grid")
    assert CLI_MODULE in imported_modules("from . import cli\n", "compacter_pl", is_package=True)
    assert CLI_MODULE in imported_modules("import compacter_pl.cli as c\n", "compacter_pl.x")
    assert module_name(PACKAGE / "tools" / "sweep" / "__init__.py") == "compacter_pl.tools.sweep"


def test_lightning_still_calls_the_one_private_hook_the_cli_overrides():
    """RunConfigCLI reads the checkpoint's hyper-parameters in parse_arguments and makes `_parse_ckpt_path` a no-op
    so Lightning does not read the whole checkpoint again; were it renamed, the no-op would silently do nothing."""
    assert "self._parse_ckpt_path()" in inspect.getsource(LightningCLI.__init__)


def test_python_m_compacter_pl_runs_the_command_line_and_names_itself():
    result = subprocess.run(
        [sys.executable, "-m", "compacter_pl", "fitt"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2 and "see `python -m compacter_pl --help`" in result.stderr, result.stderr
