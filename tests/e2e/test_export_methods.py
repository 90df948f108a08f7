"""For every method: the checkpoint holds exactly what trains, fit resumes from it, and the export reloads onto
the base model with identical predictions. And the sizes on the t5-base architecture."""

import lightning as L
import pytest
import torch
from transformers import T5ForConditionalGeneration

from compacter_pl.architectures import build_t5
from compacter_pl.data import TextToTextDataModule
from compacter_pl.export import apply_export, export_checkpoint, load_export, read_checkpoint
from compacter_pl.hub import load_t5, load_tokenizer
from compacter_pl.methods import CompacterPlusPlus, Method, trainable_names
from compacter_pl.tools.methods import method_row
from compacter_pl.training.module import TextToTextModule
from tests.helpers import DEMO_DATA, DEMO_MODEL, KEYS, TINY_KWARGS, quiet_trainer


def trainer(root, max_steps: int) -> L.Trainer:
    return quiet_trainer(max_steps=max_steps, limit_val_batches=1, val_check_interval=2, default_root_dir=root)


def datamodule(tmp_path) -> TextToTextDataModule:
    return TextToTextDataModule(
        "rte", str(DEMO_MODEL), data_dir=str(DEMO_DATA / "rte"), batch_size=8, cache_dir=str(tmp_path.parent / "cache")
    )


# The paper's Appendix C: the output layer trains too, so the checkpoint and the export hold an untied head.
CASES = [(key, {}) for key in KEYS] + [(key, {"train_output_layer": True}) for key in ("adapter", "bitfit")]


def case_method(case: tuple[str, dict]) -> Method:
    key, arguments = case
    return method_row(key).build(**TINY_KWARGS.get(key, {}), **arguments)


@pytest.mark.parametrize("case", CASES, ids=[key + "-output_layer" * bool(arguments) for key, arguments in CASES])
def test_checkpoint_resume_and_export_round_trip(case, tmp_path):
    L.seed_everything(0)
    module = TextToTextModule(str(DEMO_MODEL), method=case_method(case), task="rte", learning_rate=1e-2)
    dm = datamodule(tmp_path)
    first = trainer(tmp_path, max_steps=2)
    first.fit(module, dm)
    ckpt = tmp_path / "step2.ckpt"
    first.save_checkpoint(ckpt)

    saved = read_checkpoint(ckpt)
    assert {k.removeprefix("model.") for k in saved["state_dict"]} == trainable_names(module.model)
    assert saved["optimizer_states"], "the optimizer state is saved for resuming"

    resumed_module = TextToTextModule(str(DEMO_MODEL), method=case_method(case), task="rte", learning_rate=1e-2)
    trainer(tmp_path, max_steps=3).fit(resumed_module, dm, ckpt_path=str(ckpt))
    assert resumed_module.global_step == 3

    out = export_checkpoint(ckpt, tmp_path / "export")
    tokenizer = load_tokenizer(str(DEMO_MODEL))
    inputs = tokenizer(
        [
            "sentence1: The cat sold a garden. sentence2: The cat did not sell a garden.",
            "sentence1: A doctor found the river. sentence2: A doctor found the river.",
        ],
        return_tensors="pt",
        padding=True,
    )
    reference = TextToTextModule(str(DEMO_MODEL), method=case_method(case), task="rte")
    reference.load_state_dict(saved["state_dict"], strict=False)
    base = load_t5(str(DEMO_MODEL))
    apply_export(base, load_export(out))
    outputs = []
    for model in (reference.model.eval(), base.eval()):
        with torch.no_grad():
            outputs.append(
                model.generate(
                    **inputs, max_new_tokens=3, do_sample=False, output_scores=True, return_dict_in_generate=True
                )
            )
    assert torch.equal(outputs[0].sequences, outputs[1].sequences)
    assert all(torch.equal(a, b) for a, b in zip(outputs[0].scores, outputs[1].scores, strict=True))


@pytest.mark.slow
def test_compacter_plus_plus_on_t5_base_exports_under_half_a_megabyte(tmp_path):
    model_dir = tmp_path / "t5-base-random"
    model: T5ForConditionalGeneration = build_t5("t5-base", device="cpu")
    model.save_pretrained(model_dir)
    load_tokenizer(str(DEMO_MODEL)).save_pretrained(model_dir)  # any tokenizer: only the sizes are measured
    del model
    module = TextToTextModule(str(model_dir), method=CompacterPlusPlus(), task="rte")
    batch = {
        "input_ids": torch.randint(3, 32000, (2, 16)),
        "attention_mask": torch.ones(2, 16, dtype=torch.long),
        "labels": torch.randint(3, 32000, (2, 2)),
    }

    class OneBatch(L.LightningDataModule):
        def train_dataloader(self):
            return torch.utils.data.DataLoader([batch], batch_size=None)

    run = quiet_trainer(max_steps=1, enable_checkpointing=False, default_root_dir=tmp_path)
    run.fit(module, OneBatch())
    ckpt = tmp_path / "compacter++.ckpt"
    run.save_checkpoint(ckpt)
    export = export_checkpoint(ckpt, tmp_path / "export")
    export_bytes = (export / "adapter.safetensors").stat().st_size
    assert ckpt.stat().st_size < 2_000_000, ckpt.stat().st_size
    assert export_bytes < 500_000, export_bytes
    assert load_export(export).config["trainable_parameters"] == 104_704
