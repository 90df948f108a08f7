"""Small checkpoints, exports that reload bit-identically, many adapters on one base, safe loading."""

import json
import os
import stat

import lightning as L
import pytest
import torch

from compacter_pl.adapter_bank import AdapterBank, InputTooLong
from compacter_pl.data import TextToTextDataModule
from compacter_pl.errors import UserError
from compacter_pl.export import apply_export, export_checkpoint, load_export, read_checkpoint
from compacter_pl.hub import load_t5, load_tokenizer
from compacter_pl.methods import FullFineTuning
from compacter_pl.training.module import TextToTextModule
from tests.helpers import DEMO_DATA, DEMO_MODEL, in_process, quiet_trainer, random_export


def fit_briefly(tmp_path, method=None, steps: int = 4):
    L.seed_everything(0)
    module = TextToTextModule(str(DEMO_MODEL), method=method or FullFineTuning(), task="rte", learning_rate=3e-3)
    dm = TextToTextDataModule(
        "rte", str(DEMO_MODEL), data_dir=str(DEMO_DATA / "rte"), batch_size=16, cache_dir=str(tmp_path / "cache")
    )
    trainer = quiet_trainer(max_steps=steps, limit_val_batches=1, val_check_interval=steps, default_root_dir=tmp_path)
    trainer.fit(module, dm)
    ckpt = tmp_path / "model.ckpt"
    trainer.save_checkpoint(ckpt)
    return module, dm, ckpt


def sources(dm) -> list[str]:
    tok = dm.tokenizer
    return [tok.decode(ids, skip_special_tokens=True) for ids in dm.splits["validation"]["input_ids"][:16]]


def test_export_reloads_onto_the_base_model_with_identical_predictions(tmp_path):
    module, dm, ckpt = fit_briefly(tmp_path)
    out = export_checkpoint(ckpt, tmp_path / "export")
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["task"] == "rte" and config["method"]["class_path"].endswith("FullFineTuning")

    tokenizer = load_tokenizer(str(DEMO_MODEL))
    inputs = tokenizer(sources(dm), return_tensors="pt", padding=True)
    module.model.eval()
    expected = module.model.generate(
        **inputs, max_new_tokens=4, do_sample=False, output_scores=True, return_dict_in_generate=True
    )
    base = load_t5(str(DEMO_MODEL)).eval()
    apply_export(base, load_export(out))
    actual = base.generate(
        **inputs, max_new_tokens=4, do_sample=False, output_scores=True, return_dict_in_generate=True
    )
    assert torch.equal(expected.sequences, actual.sequences)
    assert all(torch.equal(a, b) for a, b in zip(expected.scores, actual.scores, strict=True))


def test_export_files_are_written_with_the_users_umask(tmp_path, capsys):
    _, _, ckpt = fit_briefly(tmp_path, steps=1)
    for umask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        out = tmp_path / f"exports-{umask:03o}" / "rte"
        previous = os.umask(umask)  # as the user's shell sets it for `python cli.py export`
        try:
            code, _, err = in_process(capsys, "export", "--ckpt_path", str(ckpt), "--out", str(out))
        finally:
            os.umask(previous)
        assert code == 0, err
        for name in ("adapter.safetensors", "adapter_config.json"):
            assert stat.S_IMODE((out / name).stat().st_mode) == mode, (name, oct(umask))


def test_checkpoints_load_without_pickled_code(tmp_path):
    _, _, ckpt = fit_briefly(tmp_path, steps=1)
    checkpoint = read_checkpoint(ckpt)  # torch.load(weights_only=True) underneath
    assert checkpoint["hyper_parameters"]["method"]["class_path"].endswith("FullFineTuning")


def test_adapter_bank_serves_two_adapters_on_one_base(tmp_path):
    _, dm, ckpt_a = fit_briefly(tmp_path / "a", steps=6)
    _, _, ckpt_b = fit_briefly(tmp_path / "b", steps=1)
    export_checkpoint(ckpt_a, tmp_path / "export_a")
    export_checkpoint(ckpt_b, tmp_path / "export_b")
    base = load_t5(str(DEMO_MODEL))
    before = {k: v.clone() for k, v in base.state_dict().items()}
    bank = AdapterBank(base, load_tokenizer(str(DEMO_MODEL)))
    bank.add("a", str(tmp_path / "export_a"))
    bank.add("b", str(tmp_path / "export_b"))
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items()), "the base is never written"
    texts = sources(dm)
    for name in ("a", "b"):
        reference = load_t5(str(DEMO_MODEL)).eval()
        apply_export(reference, load_export(tmp_path / f"export_{name}"))
        inputs = bank.tokenizer(texts, return_tensors="pt", padding=True)
        expected = bank.tokenizer.batch_decode(
            reference.generate(**inputs, max_new_tokens=16, do_sample=False), skip_special_tokens=True
        )
        assert bank.generate(name, texts) == expected


def test_adapter_bank_takes_a_tasks_records_and_answers_in_its_terms(tmp_path):
    _, dm, ckpt = fit_briefly(tmp_path, steps=30)  # enough for the tiny model to generate labels
    export_checkpoint(ckpt, tmp_path / "rte_export")
    bank = AdapterBank(load_t5(str(DEMO_MODEL)), load_tokenizer(str(DEMO_MODEL)))
    bank.add("rte", str(tmp_path / "rte_export"))
    raw = {r["idx"]: r for r in map(json.loads, (DEMO_DATA / "rte" / "validation.jsonl").read_text().splitlines())}
    validation = dm.splits["validation"][:16]
    records = [  # the validation records as a user has them: the task's fields, no label
        {"sentence1": raw[json.loads(i)]["sentence1"], "sentence2": raw[json.loads(i)]["sentence2"]}
        for i in validation["id"]
    ]
    # rendered as training renders them: the same tokens as the data module's validation examples
    reference = load_t5(str(DEMO_MODEL)).eval()
    apply_export(reference, load_export(tmp_path / "rte_export"))
    inputs = bank.tokenizer.pad({"input_ids": validation["input_ids"]}, return_tensors="pt")
    expected = bank.tokenizer.batch_decode(
        reference.generate(**inputs, max_new_tokens=16, do_sample=False), skip_special_tokens=True
    )
    assert bank.generate("rte", records) == expected
    assert bank.generate("rte", [dm.task.source(r) for r in records]) == expected  # strings: as before
    # labels in the task's terms, as `cli.py predict` writes them (None: not a label)
    predictions = bank.predict("rte", records)
    assert predictions == [{"0": "entailment", "1": "not_entailment"}.get(t.strip()) for t in expected]
    assert set(predictions) & {"entailment", "not_entailment"}

    with pytest.raises(UserError) as error:
        bank.generate("cola", records)
    assert str(error.value) == "no adapter named 'cola' in this AdapterBank; it has: rte (add one with bank.add)"
    with pytest.raises(UserError) as error:
        bank.predict("rte", [{"sentence1": "The cat sold a garden."}])
    assert "\n" not in str(error.value) and "input 0 lacks field 'sentence2'" in str(error.value)
    assert "rte reads sentence1, sentence2" in str(error.value)


def test_adapter_bank_names_what_is_wrong_with_one_input():
    bank = AdapterBank(load_t5(str(DEMO_MODEL)), load_tokenizer(str(DEMO_MODEL)), max_source_length=64)
    bank.add("rte", random_export("compacter", "rte", seed=0))
    record = {"sentence1": "The cat sold a garden.", "sentence2": "A cat sold something."}
    assert bank.source("rte", record) == "sentence1: The cat sold a garden. sentence2: A cat sold something."
    # the output texts `predict` reads: generated, or the chosen label's target
    assert bank.outputs("rte", [record]) == bank.generate("rte", [record])
    ranked = bank.outputs("rte", [record], "rank")[0]
    assert bank.predict("rte", [record], "rank") == [{"0": "entailment", "1": "not_entailment"}[ranked]]
    # a field of the wrong type, as `cli.py predict` refuses it; None: the caller's only input
    with pytest.raises(UserError) as error:
        bank.source("rte", {**record, "sentence1": 5}, position=None)
    assert str(error.value) == "adapter 'rte': the input: field sentence1 is an integer, expected a string"
    with pytest.raises(
        InputTooLong, match=r"^adapter 'rte': input 3 is \d+ tokens long, more than max_source_length 64;"
    ):
        bank.source("rte", {**record, "sentence2": "a cat " * 20}, position=3)


def test_corrupt_and_mismatched_exports_are_refused(tmp_path):
    _, _, ckpt = fit_briefly(tmp_path, steps=1)
    out = export_checkpoint(ckpt, tmp_path / "export")
    weights = out / "adapter.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(UserError, match="truncated or corrupt"):
        load_export(out)

    out = export_checkpoint(ckpt, tmp_path / "export2")
    config = json.loads((out / "adapter_config.json").read_text())
    config["base_architecture"]["d_model"] = 768
    (out / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="d_model=768"):
        apply_export(load_t5(str(DEMO_MODEL)), load_export(out))

    config["base_architecture"]["d_model"] = 64
    config["method"]["class_path"] = "os.system"
    (out / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="unknown method 'os.system'"):
        apply_export(load_t5(str(DEMO_MODEL)), load_export(out))

    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(UserError, match="truncated or corrupt"):
        export_checkpoint(broken, tmp_path / "export3")
