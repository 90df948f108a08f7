"""Every registered method on CUDA in bf16-mixed, as `cli.py fit` builds it (the CLI's own module, data module and
trainer, `build_cli(..., run=False)`): a few steps train with a finite loss, every trainable tensor moves and no
frozen one does, the best checkpoint holds exactly what trains, `cli.py export` of it reloads onto the base model
on the GPU with the same outputs, and the checkpoint evaluates by generation and by rank.

The CUDA cases are marked `cuda` and skip without a GPU; the same body runs on the CPU for two methods (`slow`),
which proves it where no GPU is.
"""

import json

import pytest
import torch

from compacter_pl.checkpoint_io import read_checkpoint
from compacter_pl.cli import build_cli
from compacter_pl.export import apply_export, load_export
from compacter_pl.hub import load_t5
from compacter_pl.methods import trainable_names
from compacter_pl.training.steps import greedy_generate
from tests.helpers import DEMO_MODEL, REGISTERED_KEYS, ROOT, in_process, on_cuda, tiny_method

STEPS = 3
MODEL_INPUTS = ("input_ids", "attention_mask", "labels")
CPU_KEYS = ("compacter", "intrinsic_said")  # an adapter with layer norms; the projection that caches its deltas
CASES = [on_cuda("cuda", key, id=f"cuda-{key}") for key in REGISTERED_KEYS] + [
    pytest.param("cpu", key, id=f"cpu-{key}", marks=pytest.mark.slow) for key in CPU_KEYS
]


def run_args(tmp_path, device: str, key: str, *extra: str) -> list[str]:
    """`cli.py fit` of the demo config with the tiny method `key` for STEPS steps in bf16-mixed on `device`,
    validated once (by generation) at the last step; a test of at most 2 batches."""
    return [
        "--config",
        str(ROOT / "configs/demo.yaml"),
        "--model.method",
        json.dumps(tiny_method(key).config()),
        f"--model.model_name_or_path={DEMO_MODEL}",
        "--model.learning_rate=1e-2",
        "--model.warmup_steps=0",
        f"--trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
        "--trainer.devices=1",
        "--trainer.precision=bf16-mixed",
        f"--trainer.max_steps={STEPS}",
        f"--trainer.val_check_interval={STEPS}",
        "--trainer.limit_val_batches=1",
        "--trainer.limit_test_batches=2",
        "--trainer.num_sanity_val_steps=0",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp_path}",
        "--data.batch_size=8",
        "--data.eval_batch_size=16",
        f"--data.cache_dir={tmp_path / 'cache'}",
        *extra,
    ]


def a_score(metrics: dict, name: str) -> float:
    value = float(metrics[name])
    assert 0.0 <= value <= 1.0, (name, value)
    return value


@pytest.mark.parametrize("device,key", CASES)
def test_a_method_fits_in_bf16_mixed_checkpoints_exports_and_evaluates(device, key, tmp_path, capsys):
    cli = build_cli(run_args(tmp_path, device, key), run=False)
    module = cli.model
    before = {name: tensor.detach().clone() for name, tensor in module.model.state_dict().items()}
    trained = trainable_names(module.model)
    # a tied weight is one parameter under several names (full fine-tuning's shared embedding and output layer)
    aliases = {name for name, p in module.model.named_parameters(remove_duplicate=False) if p.requires_grad}
    assert trained

    cli.trainer.fit(module, datamodule=cli.datamodule)
    assert cli.trainer.global_step == STEPS
    assert cli.trainer.strategy.root_device.type == device and cli.trainer.precision == "bf16-mixed"
    metrics = cli.trainer.callback_metrics
    assert torch.isfinite(metrics["train/loss"]), metrics
    a_score(metrics, "val/score")  # the validation at the last step generated
    after = {name: tensor.detach().cpu() for name, tensor in module.model.state_dict().items()}
    moved = {name for name in after if not torch.equal(before[name], after[name])}
    assert {name for name in trained if not torch.isfinite(after[name]).all()} == set()
    assert set(trained) - moved == set(), "every trainable tensor moves in 3 steps"
    assert moved - aliases == set(), "no frozen tensor moves"

    best = cli.trainer.checkpoint_callback.best_model_path
    saved = read_checkpoint(best)["state_dict"]
    assert set(saved) == {f"model.{name}" for name in trained}, "the checkpoint holds exactly what trains"
    assert all(torch.equal(saved[f"model.{name}"].cpu(), after[name]) for name in trained)

    # `cli.py export`, reloaded onto the base model on the same device: the trained model's outputs
    code, out, err = in_process(capsys, "export", "--ckpt_path", best, "--out", str(tmp_path / "export"))
    assert code == 0, err[-2000:]
    base = load_t5(str(DEMO_MODEL)).to(device)
    apply_export(base, load_export(tmp_path / "export"))
    batch = {k: v.to(device) for k, v in next(iter(cli.datamodule.val_dataloader())).items() if k in MODEL_INPUTS}

    def outputs(model) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return greedy_generate(model, batch["input_ids"], batch["attention_mask"], 3), model(**batch).logits

    trained_ids, trained_logits = outputs(module.model.to(device).eval())  # Lightning's teardown moved it to the CPU
    export_ids, export_logits = outputs(base.eval())
    assert torch.equal(trained_ids, export_ids), "the export generates what the trained model generates"
    torch.testing.assert_close(trained_logits, export_logits, rtol=1e-4, atol=1e-5)

    # the checkpoint evaluated by generation (its own eval_mode), then by rank (a module built with eval_mode rank)
    generated = cli.trainer.test(module, datamodule=cli.datamodule, ckpt_path=best, verbose=False)[0]
    a_score(generated, "test/score")
    ranked = build_cli(run_args(tmp_path, device, key, "--model.eval_mode=rank"), run=False)
    assert ranked.model.eval_mode == "rank"
    scores = ranked.trainer.test(ranked.model, datamodule=ranked.datamodule, ckpt_path=best, verbose=False)[0]
    a_score(scores, "test/score")
    loaded = ranked.model.model.state_dict()
    assert all(torch.equal(loaded[name].cpu(), after[name]) for name in trained), "rank tested the checkpoint"
