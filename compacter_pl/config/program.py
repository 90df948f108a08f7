"""The program as the user ran it, for every message and help text that names a command to run next."""

import sys
from pathlib import Path

MODULE_ENTRY = "compacter_pl.__main__"


def program() -> str:
    """`compacter-pl` when run as the console script, `python -m compacter_pl` when run as the package's module,
    else `python cli.py`: the checkout's entry the README runs, and what a test or a library caller of `main`
    would type to see the same message."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    if name.startswith("compacter-pl"):  # the console script (compacter-pl.exe on Windows)
        return "compacter-pl"
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if getattr(spec, "name", None) == MODULE_ENTRY:
        return "python -m compacter_pl"
    return "python cli.py"
