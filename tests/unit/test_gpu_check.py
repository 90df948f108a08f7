"""tools/gpu_check.sh and tools/gpu_requirements.py without a GPU (issue 29): the dry run checks the carried wheels
(every pin of tools/gpu_wheels.txt once, the project's requirements met with the machine's image) and the arguments,
and lists every command a GPU machine would run, each under a timeout, the whole within the 8 minutes a try may take;
its bench commands parse as `cli.py bench` parses them, with Table 3's settings."""

import os
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from compacter_pl.tools.bench.rows import TABLE3_SETTINGS
from tests.helpers import ROOT, in_process

SCRIPT = ROOT / "tools" / "gpu_check.sh"
PINS = [line.split("#")[0].strip() for line in (ROOT / "tools" / "gpu_wheels.txt").read_text().splitlines()]
PINS = [pin for pin in PINS if pin]
EIGHT_MINUTES = 480
STEP = re.compile(r"^\d+\. (?P<name>.+) \(timeout (?P<timeout>.+?) s\)\n {3}(?P<command>.+)$", re.M)


def fake_wheel(
    folder: Path, name: str, version: str, requires: tuple[str, ...] = (), tags: str = "py3-none-any"
) -> Path:
    """A wheel file holding only its METADATA (what the checks read)."""
    path = folder / f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}-{tags}.whl"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {requirement}\n" for requirement in requires)
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{name}-{version}.dist-info/METADATA", metadata)
    return path


@pytest.fixture
def wheels(tmp_path) -> Path:
    """A wheels folder with every pinned wheel (stand-ins: their METADATA only)."""
    folder = tmp_path / "whl"
    folder.mkdir()
    for pin in PINS:
        fake_wheel(folder, *pin.split("=="))
    return folder


def dry_run(wheels: Path, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "OUT"}
    return subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", "--wheels", str(wheels), "--out", str(wheels.parent / "out"), *args],
        env={**env, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=120,
    )


def steps(stdout: str) -> dict[str, tuple[str, str]]:
    """Each listed step's name: (its timeout, in seconds or as what is left of the budget; its command)."""
    return {m["name"]: (m["timeout"], m["command"]) for m in STEP.finditer(stdout)}


def test_the_dry_run_lists_every_step_with_a_timeout_within_eight_minutes(wheels):
    run = dry_run(wheels)
    assert run.returncode == 0, run.stderr
    assert "dry run: ready" in run.stdout
    listed = steps(run.stdout)
    assert list(listed) == [
        "environment",
        "install",
        "requirements",
        "cuda tests",
        "bench t5-base bf16-mixed",
        "bench t5-base fp32",
        "cuda-fwht kernel tests",
    ], run.stdout
    budget = int(re.search(r"the budget: (\d+) s", run.stdout).group(1))
    assert budget + 10 < EIGHT_MINUTES  # every step's timeout is cut to what is left of it (plus 10 s to kill)
    install = listed["install"][1]
    assert "--no-index --no-deps" in install and f"{wheels}/*.whl" in install and "--target" in install
    tests = listed["cuda tests"][1]
    assert "-m cuda" in tests and "tests/cuda" in tests
    assert "test_hadamard_kernel.py" in listed["cuda-fwht kernel tests"][1]
    assert "not built" in run.stdout  # no kernel source among these wheels


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_the_bench_commands_run_t5_base_on_cuda_with_table_3s_settings(wheels, capsys, precision):
    run = dry_run(wheels)
    name = f"bench t5-base {'fp32' if precision == '32-true' else precision}"
    words = shlex.split(steps(run.stdout)[name][1].split(" > ")[0])
    assert words[1:3] == ["cli.py", "bench"], words
    code, out, err = in_process(capsys, "bench", *words[3:], "--print_config")  # parsed as bench parses, not run
    assert code in (0, None), err
    options = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line and not line.startswith(" "))
    assert options["model"] == "t5-base" and options["device"] == "cuda" and options["precision"] == precision
    assert options["methods"] == "null"  # every method
    assert options["init_args"] == "null"  # every method with Table 3's own settings, by key:
    assert TABLE3_SETTINGS["compacter"] == {"bottleneck": 24, "n": 4}
    assert TABLE3_SETTINGS["prompt_random"]["num_tokens"] == 100
    assert TABLE3_SETTINGS["intrinsic_said"]["intrinsic_dim"] == 1400
    assert options["json"].endswith(f"out/bench_{'fp32' if precision == '32-true' else 'bf16'}.json")


def test_the_kernel_builds_in_the_background_when_its_source_is_carried(wheels):
    (wheels / "fast-hadamard-transform").mkdir()
    listed = steps(dry_run(wheels).stdout)
    names = list(listed)
    assert names.index("requirements") < names.index("cuda-fwht build, in the background") < names.index("cuda tests")
    assert f"tools/build_fwht.py {wheels}/fast-hadamard-transform" in listed["cuda-fwht build, in the background"][1]
    assert "cuda-fwht build, in the background" not in steps(dry_run(wheels, "--no-fwht").stdout)


def test_the_cpu_smoke_lists_the_cpu_cases_and_the_demo_model(wheels):
    run = dry_run(wheels, "--cpu-smoke", "--methods", "full ln_only")
    assert run.returncode == 0, run.stderr
    listed = steps(run.stdout)
    assert "not cuda" in shlex.split(listed["cuda tests"][1])  # the marker: the CPU cases of tests/cuda
    assert "--model demo/tiny-t5 --device cpu" in listed["bench demo/tiny-t5 fp32"][1]
    assert "--methods full ln_only" in listed["bench demo/tiny-t5 fp32"][1]


def test_a_missing_doubled_or_foreign_wheel_is_named_and_nothing_is_ready(wheels):
    next(wheels.glob("transformers-*.whl")).unlink()
    fake_wheel(wheels, "datasets", "9.9.9")
    next(wheels.glob("regex-*.whl")).unlink()
    fake_wheel(wheels, "regex", "2026.5.9", tags="cp311-cp311-manylinux_2_17_x86_64")  # downloaded for Python 3.11
    run = dry_run(wheels)
    assert run.returncode == 1
    assert "holds 0 wheels of transformers==5.25.0" in run.stderr
    assert "TWICE datasets" in run.stderr
    assert "WRONG PYTHON regex-2026.5.9-cp311" in run.stderr
    assert "NOT ready" in run.stdout


@pytest.mark.parametrize(
    "args,message",
    [(["--steps", "0"], "--steps takes a positive number"), (["--bogus"], "unknown argument '--bogus'")],
)
def test_bad_arguments_are_refused(wheels, args, message):
    run = dry_run(wheels, *args)
    assert run.returncode == 2 and message in run.stderr, run.stderr


def test_the_requirements_check_names_what_is_unmet_or_missing(wheels):
    # peft's stand-in replaced by one that needs what the others do not give
    fake_wheel(wheels, "peft", "0.21.2", ("dill<0.3", "no-such-package>=1", "pytest-nothing; extra == 'dev'"))
    run = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gpu_requirements.py"), "wheels", str(wheels)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1, run.stdout
    lines = run.stdout.splitlines()
    assert any(line.startswith("UNMET") and "dill<0.3 (by peft): 0.4.1 (carried)" in line for line in lines)
    assert any(line.startswith("MISSING") and "no-such-package>=1 (by peft)" in line for line in lines)
    assert not any("pytest-nothing" in line for line in lines)  # an extra nobody asked for
    assert any(
        line.startswith("ok") and "torch<2.15,>=2.4 (by pyproject.toml): 2.11.0 (image)" in line for line in lines
    )


@pytest.mark.parametrize(
    "args,code,message",
    [
        (["--help"], 0, "usage: tools/gpu_wheels.sh"),
        (["--python-version", "3"], 2, "--python-version X.Y"),
        (["--max-mib", "lots"], 2, "--max-mib takes a number"),
        (["--bogus"], 2, "unknown argument --bogus"),
    ],
)
def test_the_wheel_download_checks_its_arguments_before_downloading(args, code, message):
    run = subprocess.run(
        ["bash", str(ROOT / "tools" / "gpu_wheels.sh"), *args], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == code and message in run.stdout + run.stderr, run.stderr
