"""A sweep killed with SIGKILL mid-run resumes with every run in results.jsonl exactly once, and leaves no fit
subprocess behind. (A file of its own so that `pytest -n 2 --dist loadfile` runs it beside the other sweep tests.)"""

import fcntl
import os
import signal
import subprocess
import sys
import time

import pytest

from compacter_pl.tools.sweep.results import read_results
from tests.helpers import ROOT, small_sweep


def sweep_command(path, *args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return [sys.executable, str(ROOT / "cli.py"), "sweep", "--config", str(path), *args], env


@pytest.mark.slow
@pytest.mark.faults
def test_sigkill_mid_sweep_then_rerun_records_every_run_exactly_once(tmp_path):
    path = small_sweep(tmp_path, methods=("full",), seeds=(0, 1))
    out = tmp_path / "out"
    command, env = sweep_command(path)
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while not (out / "results.jsonl").exists() or not (out / "results.jsonl").read_bytes().count(b"\n"):
        assert process.poll() is None, process.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no run finished in time"
        time.sleep(0.2)
    second_log = out / "runs" / "rte-full-n40-s1" / "fit.log"
    while not second_log.exists() or second_log.stat().st_size == 0:  # the second run's fit is under way
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stdout.close()
    killed_with = len(read_results(out / "results.jsonl").records)
    assert killed_with == 1

    # the killed sweep's fit subprocess dies with it: every run's lock is free again within seconds
    for lock in (out / ".locks").iterdir():
        fd = os.open(lock, os.O_RDWR)
        try:
            for _ in range(50):
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    time.sleep(0.2)
            else:
                pytest.fail(f"{lock.name} is still held: the killed sweep left its subprocess running")
        finally:
            os.close(fd)

    rerun = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "1 finished, 1 to run" in rerun.stdout, rerun.stdout
    runs = [r["run"] for r in read_results(out / "results.jsonl").records]
    assert sorted(runs) == ["rte-full-n40-s0", "rte-full-n40-s1"]  # each exactly once
    assert read_results(out / "results.jsonl").problems == []
