#!/usr/bin/env bash
# Regenerate tests/fixtures/adapterhub (what tests/unit/test_adapterhub.py holds our AdapterHub format to): our side
# in this environment, then AdapterHub's in a virtual environment of its own, since adapters 1.3.0 pins
# transformers 4.57 (tools/adapterhub_fixtures.py says what each file is). Run it from anywhere; commit what changed.
#
#   tools/adapterhub_fixtures.sh          # the venv: $XDG_CACHE_HOME/compacter-pl/adapterhub-venv, made if absent
#   tools/adapterhub_fixtures.sh DIR      # a venv of your own (made there if absent)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/compacter-pl/adapterhub-venv}
if [ ! -x "$venv/bin/python" ]; then
    python -m venv "$venv"
    "$venv/bin/pip" install torch==2.13.0 adapters==1.3.0
fi
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" python "$root/tools/adapterhub_fixtures.py" ours
"$venv/bin/python" "$root/tools/adapterhub_fixtures.py" adapterhub
