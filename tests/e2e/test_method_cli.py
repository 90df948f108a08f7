"""Every method trains the demo through `cli.py` and lowers the loss; bad hyper-parameters end in one line.

All runs share one Python process (`cli.py` executed once per run with runpy, exactly as `python cli.py ARGS`
would), which saves the interpreter and library start-up of every run; each run's stderr is cut out between
markers, and its train loss is read from its CSV log.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from compacter_pl.architectures import build_t5
from compacter_pl.tools.methods import ALL_METHODS
from tests.helpers import DEMO_MODEL, ROOT, TINY_KWARGS, tiny_gated_config, tiny_method

pytestmark = pytest.mark.slow

STEPS = 8
LEARNING_RATES = {"full": 3e-3, "prompt_random": 0.3, "prompt_vocab": 0.3, "intrinsic_said": 0.1}  # else 1e-2
GATED_KEYS = ("compacter", "prompt_vocab")  # every method runs on the gated model in test_methods.py
BAD_INPUTS = {
    "n_does_not_divide_width": (
        ["--model.method.class_path", "compacter_pl.methods.Compacter", "--model.method.init_args.n", "5"],
        "n=5 does not divide the model width d_model=64",
    ),
    "n_does_not_divide_bottleneck": (
        ["--model.method.class_path", "compacter_pl.methods.Compacter", "--model.method.init_args.bottleneck", "6"],
        "n=4 does not divide the bottleneck=6",
    ),
    "bottleneck_smaller_than_n": (
        ["--model.method.class_path", "compacter_pl.methods.Compacter", "--model.method.init_args.bottleneck", "2"],
        "bottleneck=2 is smaller than n=4",
    ),
    "unknown_sublayer": (
        [
            "--model.method.class_path",
            "compacter_pl.methods.Adapter",
            "--model.method.init_args.sublayers",
            "[cross_attention]",
        ],
        "cross_attention",
    ),
    "prompt_longer_than_source": (
        ["--model.method.class_path", "compacter_pl.methods.PromptTuning", "--data.max_source_length", "50"],
        "prompt of 100 tokens is longer than the source length 50",
    ),
}

RUNNER = """
import json, runpy, sys
for name, args in json.loads(sys.argv[1]):
    print(f"@@run {name}", file=sys.stderr, flush=True)
    sys.argv = ["cli.py", *args]
    try:
        runpy.run_path("cli.py", run_name="__main__")
    except SystemExit as exit:
        print(f"@@exit {exit.code}", file=sys.stderr, flush=True)
"""


def write_gated_model(directory: Path) -> Path:
    build_t5(tiny_gated_config(), device="cpu").save_pretrained(directory)
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(DEMO_MODEL / name, directory / name)
    return directory


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Runs every method (and every bad input) once; {name: (stderr, metrics rows or None)}."""
    root = tmp_path_factory.mktemp("method_cli")
    gated = write_gated_model(root / "tiny-gated-t5")
    common = [
        "--config",
        str(ROOT / "configs/demo.yaml"),
        "--data.cache_dir",
        str(root / "cache"),
        "--trainer.enable_progress_bar",
        "false",
    ]
    batch = []
    for row in ALL_METHODS:
        for architecture in ("original", "gated") if row.key in GATED_KEYS else ("original",):
            name = f"{row.key}-{architecture}"
            out = root / name
            args = [
                "fit",
                *common,
                "--model.method",
                json.dumps(tiny_method(row.key).config()),
                "--model.learning_rate",
                str(LEARNING_RATES.get(row.key, 1e-2)),
                "--model.warmup_steps",
                "0",
                "--data.batch_size",
                "16",
                "--trainer.max_steps",
                str(STEPS),
                "--trainer.limit_val_batches",
                "0",
                "--trainer.default_root_dir",
                str(out),
                "--trainer.logger",
                "lightning.pytorch.loggers.CSVLogger",
                "--trainer.logger.init_args.save_dir",
                str(out),
                "--trainer.log_every_n_steps",
                "1",
            ]
            if architecture == "gated":
                args += ["--model.model_name_or_path", str(gated)]
            batch.append((name, args))
    for name, (overrides, _) in BAD_INPUTS.items():
        batch.append((name, ["fit", *common, "--trainer.default_root_dir", str(root / name), *overrides]))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(batch)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    stderr_of = {}
    for chunk in result.stderr.split("@@run ")[1:]:
        name, _, text = chunk.partition("\n")
        stderr_of[name] = text
    results = {}
    for name, _ in batch:
        logs = sorted((root / name).glob("lightning_logs/*/metrics.csv"))
        rows = list(csv.DictReader(logs[-1].open())) if logs else None
        results[name] = (stderr_of.get(name, ""), rows)
    return results


def train_losses(rows: list[dict]) -> list[float]:
    return [float(row["train/loss"]) for row in rows if row.get("train/loss")]


RUN_NAMES = [
    f"{row.key}-{arch}"
    for row in ALL_METHODS
    for arch in (("original", "gated") if row.key in GATED_KEYS else ("original",))
]


@pytest.mark.parametrize("name", RUN_NAMES)
def test_every_method_trains_the_demo_through_cli_and_lowers_the_loss(runs, name):
    stderr, rows = runs[name]
    assert "@@exit" not in stderr and "Traceback" not in stderr, stderr[-2000:]
    assert rows is not None, stderr[-2000:]
    losses = train_losses(rows)
    assert len(losses) == STEPS
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.97 * first, losses


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_hyper_parameters_are_one_line_through_cli(runs, name):
    stderr, _ = runs[name]
    assert "Traceback" not in stderr
    assert "@@exit 2" in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-2000:]
    assert BAD_INPUTS[name][1] in errors[0]


def test_tiny_kwargs_cover_every_method_that_needs_them():
    assert set(TINY_KWARGS) <= {row.key for row in ALL_METHODS}
