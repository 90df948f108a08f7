#!/usr/bin/env bash
# Issue 29 on a GPU machine without network, in one run of under 8 minutes (so that a failed first try leaves time
# for a second): install the project from the wheels carried in .whl/ (tools/gpu_wheels.sh prepares them), run the
# tests marked `cuda` (tests/cuda), then `bench --model t5-base` on CUDA for every method with Table 3's settings at
# a fixed batch, bf16-mixed and fp32, with the pure-torch Fastfood transforms (the default install); meanwhile the
# cuda-fwht kernel builds in the background if its source came along, and its tests run last. Every step has its own
# timeout and the whole a budget; everything goes to the output folder ($OUT, or --out):
#
#   gpu_check.log                 everything printed, the environment first (GPU, torch, the image's packages)
#   summary.txt                   one line per step: its exit code and seconds; the run's verdict last
#   fwht_build.log                the kernel's build (when its source is carried)
#   bench_fp32.txt  bench_fp32.json  bench_bf16.txt  bench_bf16.json    Table 3 on this GPU, text and JSON
#
#   tools/gpu_check.sh --dry-run       # anywhere: checks the wheels and arguments, lists every command, runs none
#   tools/gpu_check.sh                 # on the GPU machine, from the repository root
#   tools/gpu_check.sh --skip-tests    # a second try: only what the first did not finish (also --skip-bench)
#   tools/gpu_check.sh --cpu-smoke --wheels DIR   # the whole flow on a CPU machine (wheels for its Python)
set -uo pipefail

usage() {
    cat <<EOF
usage: tools/gpu_check.sh [--dry-run] [--out DIR] [--wheels DIR] [--skip-tests] [--skip-bench] [--no-fwht]
                          [--batch-size N] [--steps N] [--methods "KEY ..."] [--budget SECONDS] [--cpu-smoke]
  --dry-run           check the wheels folder and the arguments, list what would run (with its timeout), run nothing
  --out DIR           where the logs and tables go (default: \$OUT, else gpu-check-out)
  --wheels DIR        the carried wheels (default: .whl; tools/gpu_wheels.sh makes it)
  --skip-tests        no tests (a second try after a run whose tests finished)
  --skip-bench        no bench
  --no-fwht           do not build the cuda-fwht kernel even if its source is in WHEELS/fast-hadamard-transform
  --batch-size N      bench's fixed batch (default: 64 x 128 tokens, which T5-base fits on 80 GB in fp32)
  --steps N           bench's measured steps per method (default: 3, after 1 warm-up)
  --methods "K ..."   bench only these methods (default: all)
  --budget SECONDS    the whole run's limit, which every step's timeout respects (default: 450)
  --cpu-smoke         the same flow where there is no GPU, to check the script and the install: the CPU cases of
                      tests/cuda instead of the CUDA ones, no kernel build, bench of the demo model on the CPU
EOF
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR=${OUT:-$REPO/gpu-check-out}
WHEELS=$REPO/.whl
DRY_RUN=0 TESTS=1 BENCH=1 FWHT=1
BATCH=64 STEPS=3 METHODS="" BUDGET=450
MARKER=cuda BENCH_MODEL=t5-base BENCH_DEVICE=cuda SOURCE_LENGTH=128
PYTHON=${PYTHON:-python3}
SITE=${GPU_CHECK_SITE:-/tmp/compacter-site}  # the carried wheels, installed (before the image's packages)
FWHT_OUT=${GPU_CHECK_FWHT:-/tmp/compacter-fwht}
# Each step's timeout in seconds, or an expression of LEFT, the seconds left of the budget when it starts (which
# also cuts every fixed one): the benches share what the tests leave, less what the kernel's tests need at the end.
CAP_ENV=20 CAP_INSTALL=45 CAP_TESTS=150 KERNEL_RESERVE=45
CAP_FWHT="LEFT - $KERNEL_RESERVE" CAP_BENCH_FIRST="(LEFT - $KERNEL_RESERVE) / 2" CAP_BENCH_SECOND="LEFT - $KERNEL_RESERVE"

number() { [[ $2 =~ ^[1-9][0-9]*$ ]] || { echo "error: $1 takes a positive number, got '$2'" >&2; exit 2; }; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dry-run) DRY_RUN=1; shift ;;
        --out) OUT_DIR=${2:?--out DIR}; shift 2 ;;
        --wheels) WHEELS=${2:?--wheels DIR}; shift 2 ;;
        --skip-tests) TESTS=0; shift ;;
        --skip-bench) BENCH=0; shift ;;
        --no-fwht) FWHT=0; shift ;;
        --batch-size) number "$1" "${2-}"; BATCH=$2; shift 2 ;;
        --steps) number "$1" "${2-}"; STEPS=$2; shift 2 ;;
        --methods) METHODS=${2:?--methods \"KEY ...\"}; shift 2 ;;
        --budget) number "$1" "${2-}"; BUDGET=$2; shift 2 ;;
        --cpu-smoke) MARKER="not cuda" BENCH_MODEL=demo/tiny-t5 BENCH_DEVICE=cpu BATCH=8 SOURCE_LENGTH=32 FWHT=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
OUT_DIR=$(realpath -m -- "$OUT_DIR") WHEELS=$(realpath -m -- "$WHEELS")  # as given from here; then the repository
cd "$REPO" || exit 1
FWHT_SRC=$WHEELS/fast-hadamard-transform

wheel_files() { find "$WHEELS" -mindepth 1 -maxdepth 1 -type f -name '*.whl' -printf '%f\n'; }

# --- what is carried: every pinned wheel once, the size, the requirements against the machine's image -------------
preflight() {
    local problems=0 pin name version pattern found
    command -v "$PYTHON" >/dev/null || { echo "error: no $PYTHON" >&2; return 1; }
    if [[ ! -d $WHEELS ]]; then
        echo "error: no wheels folder $WHEELS: run tools/gpu_wheels.sh where PyPI is reachable" >&2
        return 1
    fi
    while read -r pin; do
        name=${pin%%==*} version=${pin#*==}
        pattern=$(echo "$name" | tr 'A-Z.-' 'a-z__')-$version-
        found=$(wheel_files | awk -v p="$pattern" 'index(tolower($0), p) == 1' | wc -l)
        if [[ $found -ne 1 ]]; then
            echo "error: $WHEELS holds $found wheels of $pin (tools/gpu_wheels.txt): run tools/gpu_wheels.sh" >&2
            problems=1
        fi
    done < <(sed 's/#.*//; s/[[:space:]]//g; /^$/d' tools/gpu_wheels.txt)
    local bytes
    bytes=$(du -sb "$WHEELS" | cut -f1)
    echo "wheels: $(wheel_files | wc -l) in $WHEELS, $((bytes / 1048576)) MiB"
    if (( bytes > 55 * 1048576 )); then
        echo "error: $WHEELS is over 55 MiB: the working tree that travels is limited to 64 MiB" >&2
        problems=1
    fi
    # for the Python that runs here, except in a dry run for the GPU machine: its image's
    local python=()
    [[ $DRY_RUN -eq 0 || $BENCH_DEVICE == cpu ]] && python=(--python-version "$("$PYTHON" -c 'import platform; print(platform.python_version())')")
    if ! "$PYTHON" tools/gpu_requirements.py wheels "$WHEELS" "${python[@]}" >"${TMPDIR:-/tmp}/gpu_requirements.$$" 2>&1; then
        grep -E '^(UNMET|MISSING|TWICE|WRONG|error)' "${TMPDIR:-/tmp}/gpu_requirements.$$" >&2
        echo "error: the wheels and the image do not meet the project's requirements (tools/gpu_requirements.py)" >&2
        problems=1
    fi
    tail -n 1 "${TMPDIR:-/tmp}/gpu_requirements.$$"
    rm -f "${TMPDIR:-/tmp}/gpu_requirements.$$"
    if [[ $TESTS -eq 1 && $FWHT -eq 1 && -d $FWHT_SRC ]]; then
        echo "cuda-fwht: its source is in $FWHT_SRC: built in the background while the tests and bench run, tested last"
    else
        echo "cuda-fwht: not built (no $FWHT_SRC, --no-fwht or --skip-tests): the kernel's tests skip"
    fi
    return $problems
}

# --- steps: each under `timeout`, within what is left of the budget ---------------------------------------------
START=$(date +%s)
STEP=0
FAILED=0
left() { echo $((BUDGET - ($(date +%s) - START))); }

record() {  # name, exit code, seconds, note
    local line
    line=$(printf '%-28s %-8s %5s s  %s' "$1" "$2" "$3" "${4-}")
    [[ $DRY_RUN -eq 1 ]] || printf '%s\n' "$line" >>"$OUT_DIR/summary.txt"
}

# limit CAP: the timeout of a step starting now (CAP: seconds, or an expression of LEFT), at most what is left.
limit() {
    local LEFT cap
    LEFT=$(left)
    cap=$(($1))
    (( cap < LEFT )) && echo "$cap" || echo "$LEFT"
}

# step NAME CAP COMMAND: runs COMMAND (a shell string) under `limit CAP` seconds; the dry run lists it.
step() {
    local name=$1 command=$3 limit rc began
    STEP=$((STEP + 1))
    if [[ $DRY_RUN -eq 1 ]]; then
        printf '%d. %s (timeout %s s)\n   %s\n' "$STEP" "$name" "${2//LEFT/what is left}" "$command"
        return 0
    fi
    limit=$(limit "$2")
    if (( limit < 10 )); then
        echo "=== $STEP. $name: skipped, $(left) s of the budget left"
        record "$name" skipped 0 "no time left"
        FAILED=1
        return 1
    fi
    echo "=== $STEP. $name (timeout $limit s): $command"
    began=$(date +%s)
    timeout -k 10 "$limit" bash -c "$command"
    rc=$?
    local took=$(($(date +%s) - began)) note=""
    [[ $rc -eq 124 || $rc -eq 137 ]] && note="timed out after $limit s"
    echo "=== $STEP. $name: exit $rc in $took s $note"
    record "$name" "$rc" "$took" "$note"
    [[ $rc -eq 0 ]] || FAILED=1
    return "$rc"
}

q() { printf '%q' "$1"; }
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
PACKAGES='^(torch|lightning|pytorch-lightning|transformers|tokenizers|safetensors|huggingface.hub|datasets|pyarrow|fsspec|peft|jsonargparse|torchmetrics|tensorboard|numpy|pandas|xxhash|typer|tqdm|filelock|packaging|pyyaml|psutil|matplotlib|typing.extensions|pytest|pytest-xdist|pytest-timeout|ninja) '

ENV_CMD="nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; \
$PYTHON -c 'import sys, torch; print(sys.version.split()[0], torch.__version__, \"CUDA\", torch.version.cuda, torch.cuda.get_device_name())'; \
env -u PYTHONPATH $PYTHON -m pip list --disable-pip-version-check 2>/dev/null | grep -i -E '$PACKAGES'"
INSTALL_CMD="$PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $(q "$SITE") \
$(q "$WHEELS")/*.whl"
REQUIREMENTS_CMD="$PYTHON tools/gpu_requirements.py installed"
FWHT_CMD="nice -n 19 $PYTHON tools/build_fwht.py $(q "$FWHT_SRC") $(q "$FWHT_OUT") > $(q "$OUT_DIR/fwht_build.log") 2>&1"
PYTEST="$PYTHON -m pytest -p no:cacheprovider -v -rfEs --durations=10 -m $(q "$MARKER")"
if [[ $DRY_RUN -eq 1 ]] || $PYTHON -c 'import pytest_timeout' 2>/dev/null; then
    PYTEST+=" --timeout 120"  # a hung test fails alone, not the whole step
fi
PARALLEL=""
if [[ $DRY_RUN -eq 1 ]] || $PYTHON -c 'import xdist' 2>/dev/null; then
    PARALLEL=" -n 4 --dist load"  # the demo model's runs, 4 at a time on the one GPU
fi
TESTS_CMD="$PYTEST$PARALLEL tests/cuda --ignore=tests/cuda/test_hadamard_kernel.py"
KERNEL_CMD="PYTHONPATH=$(q "$FWHT_OUT"):\$PYTHONPATH $PYTEST tests/cuda/test_hadamard_kernel.py"
bench_cmd() {  # precision, file stem
    echo "$PYTHON cli.py bench --model $BENCH_MODEL --device $BENCH_DEVICE --precision $1 --batch_size $BATCH \
--source_length $SOURCE_LENGTH \
--steps $STEPS --warmup 1 --eval_steps 2 --timeout 60 \
${METHODS:+--methods $METHODS }--json $(q "$OUT_DIR/$2.json") \
> $(q "$OUT_DIR/$2.txt"); rc=\$?; cat $(q "$OUT_DIR/$2.txt"); exit \$rc"
}
BENCH_FP32_CMD=$(bench_cmd 32-true bench_fp32)
BENCH_BF16_CMD=$(bench_cmd bf16-mixed bench_bf16)

# The kernel builds in the background, from after the install to before its tests (a dry run lists it).
FWHT_PID=""
start_fwht_build() {
    if [[ $DRY_RUN -eq 1 ]]; then
        STEP=$((STEP + 1))
        printf '%d. %s (timeout %s s)\n   %s\n' "$STEP" "cuda-fwht build, in the background" "${CAP_FWHT//LEFT/what is left}" "$FWHT_CMD"
        return
    fi
    FWHT_LIMIT=$(limit "$CAP_FWHT")
    echo "=== cuda-fwht build in the background (timeout $FWHT_LIMIT s, log fwht_build.log): $FWHT_CMD"
    FWHT_BEGAN=$(date +%s)
    timeout -k 10 "$FWHT_LIMIT" bash -c "$FWHT_CMD" &
    FWHT_PID=$!
}
wait_fwht_build() {
    [[ -n $FWHT_PID ]] || return 0
    wait "$FWHT_PID"
    local rc=$?
    tail -n 3 "$OUT_DIR/fwht_build.log"
    local took=$(($(stat -c %Y "$OUT_DIR/fwht_build.log") - FWHT_BEGAN))  # until its last line, not until now
    record "cuda-fwht build" "$rc" "$took" "$([[ $rc -eq 124 ]] && echo "timed out")"
    [[ $rc -eq 0 ]] || FAILED=1
}

plan() {
    step "environment" $CAP_ENV "$ENV_CMD"
    step "install" $CAP_INSTALL "$INSTALL_CMD" || { echo "nothing runs without the install"; return 1; }
    step "requirements" $CAP_ENV "$REQUIREMENTS_CMD"  # an unmet one is reported; the tests say whether it matters
    [[ $TESTS -eq 1 && $FWHT -eq 1 && -d $FWHT_SRC ]] && start_fwht_build
    [[ $TESTS -eq 1 ]] && step "cuda tests" $CAP_TESTS "$TESTS_CMD"
    [[ $BENCH -eq 1 ]] && step "bench $BENCH_MODEL bf16-mixed" "$CAP_BENCH_FIRST" "$BENCH_BF16_CMD"
    [[ $BENCH -eq 1 ]] && step "bench $BENCH_MODEL fp32" "$CAP_BENCH_SECOND" "$BENCH_FP32_CMD"
    wait_fwht_build
    [[ $TESTS -eq 1 ]] && step "cuda-fwht kernel tests" "LEFT" "$KERNEL_CMD"
    return 0
}

if [[ $DRY_RUN -eq 1 ]]; then
    echo "dry run: nothing runs; on a GPU machine, from $REPO, with output in $OUT_DIR:"
    preflight
    ok=$?
    echo "PYTHONPATH=$PYTHONPATH  (HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1); the budget: $BUDGET s"
    plan
    [[ $ok -eq 0 ]] && echo "dry run: ready" || echo "dry run: NOT ready (see the errors above)"
    exit $ok
fi

mkdir -p "$OUT_DIR" || exit 1
rm -f "$OUT_DIR/summary.txt"
exec > >(tee -a "$OUT_DIR/gpu_check.log") 2>&1
echo "gpu_check.sh $(date -u +%FT%TZ) in $REPO, budget $BUDGET s, output in $OUT_DIR"
git -C "$REPO" log -1 --format='commit %h %s' 2>/dev/null
if preflight; then
    plan
else
    record preflight 1 0 "the wheels are not ready"
    FAILED=1
fi

verdict=$([[ $FAILED -eq 0 ]] && echo "PASSED" || echo "FAILED")
printf '%s in %d s\n' "$verdict" $(($(date +%s) - START)) >>"$OUT_DIR/summary.txt"
echo "=== summary ($OUT_DIR/summary.txt)"
cat "$OUT_DIR/summary.txt"
exit $FAILED
