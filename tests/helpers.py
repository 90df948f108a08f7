"""What the test files share besides fixtures (those are in conftest.py): the repository's paths, the CLI run in a
subprocess or in this process, the one-line error checks, the project's Trainer as tests build it, the tiny methods
and the demo sweep. Test files import from here (`from tests.helpers import ...`), never from conftest.py or from
each other."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from transformers import T5Config

from compacter_pl.methods import Method, registry
from compacter_pl.tools.methods import ALL_METHODS, method_row

# --- the repository ---------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
DEMO_MODEL = ROOT / "demo" / "tiny-t5"
DEMO_DATA = ROOT / "demo" / "data"
GLUE_SAMPLE = ROOT.parent / "shared" / "glue-sample" / "hub"
# A duration as the sweep prints it (`compacter_pl.tools.sweep.runner.duration`): 55.5s, 1m03s, 2h05m. Output checks use
# it so they hold however long a run takes.
DURATION = r"(?:\d+\.\ds|\d+m\d{2}s|\d+h\d{2}m)"

# --- the command line -------------------------------------------------------------------------------------------


def run_cli(*args: str, cwd: Path = ROOT, timeout: float = 600, env: dict | None = None):
    """`python cli.py ARGS` in a subprocess, offline, as a user would run it."""
    full_env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def in_process(capsys, *args: str) -> tuple[int, str, str]:
    """`cli.py ARGS` in this process (no interpreter start-up, no subprocess): (exit code, stdout, stderr)."""
    from compacter_pl.cli import main

    log_to_this_tests_stderr()

    try:
        main(list(args))
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def log_to_this_tests_stderr() -> None:
    """Lightning's loggers write to the stderr of the test that imported Lightning, which capsys has closed since
    (a "--- Logging error ---" traceback in a later test of the same worker): point them at this test's."""
    for logger in [logging.root, *logging.root.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):
            if type(handler) is logging.StreamHandler:
                handler.stream = sys.stderr  # not setStream, which flushes the closed one


def run_demo(cli, tmp_path: Path, *overrides: str, command: str = "fit", env: dict | None = None):
    """`cli.py COMMAND --config configs/demo.yaml` writing its runs and cache under `tmp_path`."""
    return cli(
        command,
        "--config",
        str(ROOT / "configs/demo.yaml"),
        "--trainer.default_root_dir",
        str(tmp_path),
        "--data.cache_dir",
        str(tmp_path / "cache"),
        *overrides,
        env=env,
    )


# --- one-line errors --------------------------------------------------------------------------------------------


def error_line(err: str, *fragments: str) -> str:
    """The one `error:` line of stderr (no traceback), holding every fragment."""
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err[-2000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def one_line_error(code: int, err: str, *fragments: str) -> str:
    """The exit code 2 and the one `error:` line (no traceback) of bad input, holding every fragment."""
    assert code == 2, err
    return error_line(err, *fragments)


def assert_one_line_error(result, *fragments: str) -> str:
    """A subprocess run's non-zero exit and its one `error:` line."""
    assert result.returncode != 0
    return error_line(result.stderr, *fragments)


# --- a run in this process --------------------------------------------------------------------------------------


def quiet_trainer(**overrides):
    """`make_trainer` (the project's Trainer, as `cli.py fit` builds it) as a test runs it: on the CPU, without a
    logger, progress bar or model summary. `overrides` are what the test varies (and win)."""
    from compacter_pl.training import make_trainer

    quiet = {"accelerator": "cpu", "logger": False, "enable_progress_bar": False, "enable_model_summary": False}
    return make_trainer(**{**quiet, **overrides})


def fit_checkpoint(tmp_path: Path, method: Method, steps: int = 1, task: str = "rte") -> Path:
    """The checkpoint of `steps` training steps of `method` on the demo model and the task's demo data."""
    import lightning as L

    from compacter_pl.data import TextToTextDataModule
    from compacter_pl.training.module import TextToTextModule

    L.seed_everything(0)
    module = TextToTextModule(str(DEMO_MODEL), method=method, task=task, learning_rate=3e-3)
    data = TextToTextDataModule(
        task, str(DEMO_MODEL), data_dir=str(DEMO_DATA / task), batch_size=16, cache_dir=str(tmp_path / "cache")
    )
    trainer = quiet_trainer(max_steps=steps, limit_val_batches=0, default_root_dir=tmp_path)
    trainer.fit(module, data)
    checkpoint = tmp_path / "model.ckpt"
    trainer.save_checkpoint(checkpoint)
    return checkpoint


# --- the methods on the tiny demo model -------------------------------------------------------------------------

# Hyper-parameters that fit a d_model 64, 2 + 2 block model (the paper's defaults need d_model >= 96 or so).
TINY_KWARGS = {
    "adapter": {"bottleneck": 8},
    "pfeiffer": {"bottleneck": 8},
    "adapterdrop": {"dropped_blocks": [0], "bottleneck": 8},
    "adapter_lowrank": {"bottleneck": 8},
    # their own randomness pinned (by default it follows the process's seed, which pytest leaves random)
    "prompt_random": {"num_tokens": 5, "seed": 0},
    "prompt_vocab": {"num_tokens": 5, "seed": 0},
    "intrinsic_said": {"intrinsic_dim": 500, "seed": 0},
    "phm_adapter": {"n": 4, "bottleneck": 8},
    "compacter": {"bottleneck": 8},
    "compacter++": {"bottleneck": 8},
}
KEYS = [row.key for row in ALL_METHODS]
REGISTERED_KEYS = [row.key for row in registry.registered_methods()]  # KEYS and bench's floor (ln_only)


def tiny_method(key: str) -> Method:
    return method_row(key).build(**TINY_KWARGS.get(key, {}))


def random_export(key: str, task: str, seed: int, scale: float = 0.3, **init_args):
    """An export of method `key` (tiny hyper-parameters) on the demo model for `task`, whose trained parameters are
    moved by N(0, scale^2) noise (layer norms by a third of it) so every part of the adapter changes the outputs."""
    from compacter_pl.export import model_export
    from compacter_pl.hub import load_t5

    model, method = load_t5(str(DEMO_MODEL)), method_row(key).build(**{**TINY_KWARGS.get(key, {}), **init_args})
    method.check(model.config)
    method.apply(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                noise = torch.randn(parameter.shape, generator=generator) * (scale / 3 if "norm" in name else scale)
                parameter.add_(noise.to(parameter.dtype))
    return model_export(model, method, task, str(DEMO_MODEL))


def tiny_gated_config() -> T5Config:
    """The demo model's sizes with T5 v1.1's gated-GeLU feed-forward and untied output layer."""
    config = T5Config.from_pretrained(DEMO_MODEL).to_dict()
    for derived in ("dense_act_fn", "is_gated_act", "scale_decoder_outputs"):
        config.pop(derived, None)
    return T5Config(**{**config, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False})


def tiny_batch(seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, 220, (3, 9), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, 6:] = 0
    input_ids[0, 6:] = 0
    labels = torch.randint(3, 220, (3, 2), generator=generator)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


# --- the Hugging Face Hub, offline -------------------------------------------------------------------------------


def closed_port_endpoint() -> str:
    """An endpoint on this machine that refuses connections (a port just freed): an unreachable Hub."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def cache_hub_repository(cache: Path, repo_id: str, folder: Path, commit: str = "1" * 40) -> Path:
    """Lay out `folder`'s files as huggingface_hub's cache holds a model repository `repo_id` it downloaded at
    `commit` (its main branch): `models--user--repo/blobs/<sha256>`, `snapshots/<commit>/<path>` linking to them,
    `refs/main` naming the commit. Returns the snapshot folder."""
    import hashlib

    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        content = path.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(content).hexdigest()
        blob.write_bytes(content)
        link = snapshot / path.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


# --- CUDA -------------------------------------------------------------------------------------------------------

NO_CUDA = "needs a CUDA GPU (torch.cuda.is_available() is False); tools/gpu_check.sh runs these on one"
# A test, module (pytestmark) or parameter that needs a GPU: marked `cuda` (`pytest -m cuda` selects them) and
# skipped, saying why, where torch sees none.
CUDA_MARKS = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)]


def on_cuda(*values, id: str | None = None):
    """A parametrize case that needs a GPU (see CUDA_MARKS), beside the same test's CPU cases."""
    return pytest.param(*values, id=id, marks=CUDA_MARKS)


# --- the demo sweep ---------------------------------------------------------------------------------------------

DEMO_SWEEP = ROOT / "configs" / "sweeps" / "demo.yaml"


def write_sweep(tmp_path, name="sweep.yaml", **changes):
    """The demo sweep with `changes`, its outputs and data cache under tmp_path."""
    spec = yaml.safe_load(DEMO_SWEEP.read_text())
    spec.update(changes)
    spec["out_dir"] = str(tmp_path / "out")
    spec["overrides"] = {**(spec.get("overrides") or {}), "data.cache_dir": str(tmp_path / "cache")}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def small_sweep(tmp_path, methods=("full", "compacter++"), seeds=(0, 1)):
    demo = yaml.safe_load(DEMO_SWEEP.read_text())
    return write_sweep(
        tmp_path,
        methods={m: demo["methods"][m] for m in methods},
        seeds=list(seeds),
        sizes={40: {"trainer.max_epochs": 1}},
    )
