#!/usr/bin/env bash
# Prepares, on a machine that reaches PyPI, what tools/gpu_check.sh installs on a GPU machine without network
# (issue 29): the wheels of tools/gpu_wheels.txt for that machine's Python, no dependencies, in .whl/ (git-ignored,
# carried with the working tree), and optionally the source of the cuda-fwht kernel. Then it checks the folder: one
# wheel per package, every requirement of the project met by them and the machine's image (tools/gpu_machine.txt),
# and the size (the working tree that travels, wheels included, is limited to 64 MiB).
#
#   tools/gpu_wheels.sh                                   # .whl/ for Python 3.12 on Linux x86-64
#   tools/gpu_wheels.sh --fwht-src ~/fast-hadamard-transform   # also the kernel's source (a git checkout of
#                                                         # Dao-AILab/fast-hadamard-transform; PyPI's sdist lacks it)
set -euo pipefail

usage() {
    cat <<EOF
usage: tools/gpu_wheels.sh [--dest DIR] [--python-version X.Y] [--fwht-src DIR] [--max-mib N]
  --dest DIR            where the wheels go (default: .whl in the repository; its old *.whl are replaced)
  --python-version X.Y  the GPU machine's Python (default: 3.12)
  --fwht-src DIR        a checkout of Dao-AILab/fast-hadamard-transform: its csrc/ and package are copied to
                        DEST/fast-hadamard-transform, which gpu_check.sh builds for the machine's GPU
  --max-mib N           refuse a folder larger than this (default: 55, leaving room for the working tree)
EOF
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST="$REPO/.whl"
PYTHON_VERSION=3.12
FWHT_SRC=""
MAX_MIB=55
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dest) DEST=$2; shift 2 ;;
        --python-version) PYTHON_VERSION=$2; shift 2 ;;
        --fwht-src) FWHT_SRC=$2; shift 2 ;;
        --max-mib) MAX_MIB=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
[[ $PYTHON_VERSION =~ ^3\.[0-9]+$ ]] || { echo "error: --python-version X.Y, got $PYTHON_VERSION" >&2; exit 2; }
[[ $MAX_MIB =~ ^[0-9]+$ ]] || { echo "error: --max-mib takes a number of MiB, got $MAX_MIB" >&2; exit 2; }
PYTHON=${PYTHON:-python3}

mapfile -t PINS < <(sed 's/#.*//; s/[[:space:]]//g; /^$/d' "$REPO/tools/gpu_wheels.txt")
mkdir -p "$DEST"
rm -f "$DEST"/*.whl
echo "downloading ${#PINS[@]} wheels for CPython $PYTHON_VERSION on manylinux x86-64 into $DEST"
"$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version "$PYTHON_VERSION" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d "$DEST" "${PINS[@]}"

if [[ -n $FWHT_SRC ]]; then
    for part in csrc fast_hadamard_transform LICENSE; do
        [[ -e $FWHT_SRC/$part ]] || { echo "error: $FWHT_SRC has no $part (a checkout of fast-hadamard-transform?)" >&2; exit 1; }
    done
    rm -rf "$DEST/fast-hadamard-transform"
    mkdir -p "$DEST/fast-hadamard-transform"
    cp -r "$FWHT_SRC/csrc" "$FWHT_SRC/fast_hadamard_transform" "$FWHT_SRC/LICENSE" "$DEST/fast-hadamard-transform/"
    echo "copied the cuda-fwht kernel's source to $DEST/fast-hadamard-transform"
fi

echo
(cd "$DEST" && du -b -- *.whl | sort -n | awk '{printf "%10.2f MiB  %s\n", $1 / 1048576, $2}')
total=$(du -sb "$DEST" | cut -f1)
awk -v bytes="$total" -v dest="$DEST" 'BEGIN { printf "%10.2f MiB  in all (%s)\n\n", bytes / 1048576, dest }'
if (( total > MAX_MIB * 1048576 )); then
    echo "error: $DEST is over $MAX_MIB MiB: carry fewer wheels (tools/gpu_wheels.txt)" >&2
    exit 1
fi
"$PYTHON" "$REPO/tools/gpu_requirements.py" wheels "$DEST" --python-version "$PYTHON_VERSION"
