"""Freed host memory is kept for the next step: no page faults per step, and the CLI does it by default."""

import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from compacter_pl import host_memory
from compacter_pl.host_memory import HostMemory
from tests.helpers import ROOT

# A training step in miniature: 96 MiB of activations of mixed sizes (1-8 MiB, each below glibc's mmap ceiling),
# all alive at the step's peak, all freed at its end. Prints the page faults of steps 3 to 5. "low": glibc's mmap
# threshold below the activations, so each is mapped and unmapped (glibc starts at 128 KiB and raises it as blocks
# are freed; whether its heap is trimmed after a step depends on the process's address-space layout, so only the
# mapped blocks make a repeatable test). "low+keep": then `keep_freed_memory()`.
STEPS = """
import resource, sys, torch
from compacter_pl import host_memory
assert host_memory.set_malloc_thresholds(512 * 1024)
if sys.argv[1] == "low+keep":
    assert host_memory.keep_freed_memory()
def step():
    alive = [torch.empty(size * 2**18).fill_(1.0) for size in [1, 2, 4, 8, 1] * 8]  # float32: size MiB each
    del alive
faults = []
for index in range(5):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sum(faults[2:]))
"""
STEP_PAGES = 96 * 2**20 // 4096


def faults_per_three_steps(setting: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", STEPS, setting], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return int(result.stdout.split()[-1])


@pytest.mark.slow  # two interpreters that step 96 MiB tensors: ~22 s on 2 loaded cores
@pytest.mark.skipif(host_memory._glibc() is None, reason="glibc's malloc only")
def test_kept_memory_is_reused_without_page_faults_where_glibc_returns_it_every_step():
    assert faults_per_three_steps("low") > 2 * STEP_PAGES  # every step faults its 96 MiB in, zero-filled
    assert faults_per_three_steps("low+keep") < STEP_PAGES // 50


def test_the_callback_keeps_freed_memory_at_setup_or_returns_it_when_told_to(monkeypatch):
    calls = []
    monkeypatch.setattr(host_memory, "keep_freed_memory", lambda: calls.append("kept") or True)
    monkeypatch.setattr(host_memory, "return_freed_memory", lambda: calls.append("returned") or True)
    HostMemory().setup(on_device("cpu"), None, "fit")
    HostMemory(keep_freed=False).setup(on_device("cpu"), None, "validate")
    assert calls == ["kept", "returned"]


def on_device(kind: str):
    """A trainer as the callback sees it: only its strategy's root device."""
    return SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device(kind)))


@pytest.mark.parametrize("keep_freed", [True, False])
def test_gpu_runs_keep_the_process_malloc_defaults(monkeypatch, keep_freed):
    calls = []
    monkeypatch.setattr(host_memory, "set_malloc_thresholds", lambda *a, **k: calls.append(a) or True)
    HostMemory(keep_freed=keep_freed).setup(on_device("cuda"), None, "fit")
    assert calls == []  # GPU activations live in the CUDA caching allocator: glibc tuning would only change the host
    HostMemory(keep_freed=keep_freed).setup(on_device("cpu"), None, "fit")
    assert len(calls) == 1


def test_the_cli_adds_the_callback_on_by_default_and_lets_a_config_turn_it_off():
    from compacter_pl.config import parse_run

    demo = ["fit", "--config", str(ROOT / "configs/demo.yaml")]
    assert parse_run(demo)["host_memory"] == {"keep_freed": True}
    assert parse_run(demo + ["--host_memory.keep_freed", "false"])["host_memory"] == {"keep_freed": False}
