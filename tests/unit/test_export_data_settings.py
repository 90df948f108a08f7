"""An export records the data settings its run trained with, and `AdapterBank` reads inputs with them: cut to the
adapter's max_source_length in its truncation mode, token for token as the data module cut the training data; a
max_source_length given to the bank is a hard limit instead (refused, never cut); an export without data settings
refuses inputs over 512 tokens as before."""

import json

import pytest
import torch

from compacter_pl.adapter_bank import AdapterBank
from compacter_pl.data import TextToTextDataModule
from compacter_pl.errors import UserError
from compacter_pl.export import data_settings, export_checkpoint, load_export, run_hyperparameters
from compacter_pl.hub import load_t5, load_tokenizer
from tests.helpers import DEMO_DATA, DEMO_MODEL, random_export


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(str(DEMO_MODEL))


@pytest.fixture(scope="module")
def base():
    return load_t5(str(DEMO_MODEL))


def validation_records(dm: TextToTextDataModule, count: int = 16) -> tuple[list[dict], list[list[int]]]:
    """The first validation examples of the data module: their records as a user has them (no label) and the token
    ids training made of them."""
    raw = {r["idx"]: r for r in map(json.loads, (DEMO_DATA / "rte" / "validation.jsonl").read_text().splitlines())}
    validation = dm.splits["validation"][:count]
    records = [{field: raw[json.loads(i)][field] for field in dm.task.input_fields} for i in validation["id"]]
    return records, validation["input_ids"]


def exported_with(dm: TextToTextDataModule, seed: int = 1):
    """An adapter exported with the data settings of a run on `dm`."""
    export = random_export("compacter", "rte", seed)
    export.config["data"] = data_settings({"datamodule_hyper_parameters": dict(dm.hparams), "hyper_parameters": {}})
    return export


def test_an_export_records_the_data_settings_its_run_trained_with(trained, tmp_path):
    out = export_checkpoint(trained, tmp_path / "export")
    data = json.loads((out / "adapter_config.json").read_text())["data"]
    assert data == {
        "task": "rte",
        "template": "sentence1: {sentence1} sentence2: {sentence2}",
        "max_source_length": 128,  # the task's default, resolved (the config leaves it unset)
        "truncation": "end",
        "max_target_length": 128,
        "max_new_tokens": None,
        "eval_mode": "generate",
        "dataset": "nyu-mll/glue",
        "dataset_config": "rte",
        "revision": None,  # local files: no Hub revision
        "data_dir": "demo/data/rte",
        "data_seed": 42,
        "validation_size": 64,
        "train_size": None,
    }
    # what `--adapter` runs with: the run's own settings, as its checkpoint gives them
    hparams = run_hyperparameters(load_export(out))
    assert hparams["datamodule_hyper_parameters"] == {
        "task": "rte",
        "max_source_length": 128,
        "max_target_length": 128,
        "truncation": "end",
        "data_seed": 42,
        "validation_size": 64,
    }
    assert hparams["hyper_parameters"]["method"]["class_path"].endswith("FullFineTuning")
    assert data_settings({"hyper_parameters": {}}) is None  # a run without the data module's record


@pytest.mark.parametrize("mode", ["end", "fields"])
def test_the_bank_cuts_an_input_as_training_cut_it(tmp_path, tokenizer, base, mode):
    dm = TextToTextDataModule(
        "rte",
        str(DEMO_MODEL),
        data_dir=str(DEMO_DATA / "rte"),
        max_source_length=32,
        truncation=mode,
        cache_dir=str(tmp_path),
    )
    dm.setup("validate")
    records, training_ids = validation_records(dm)
    assert len(tokenizer(dm.task.source(records[0]))["input_ids"]) > 32 == len(training_ids[0])  # it was cut
    assert sum(len(ids) == 32 for ids in training_ids) > 8  # most were
    bank = AdapterBank(base, tokenizer, max_new_tokens=3)
    bank.add("rte", exported_with(dm))
    assert [bank.input_ids("rte", record) for record in records] == training_ids
    generated = bank.generate("rte", records)  # cut, never refused
    padded = tokenizer.pad({"input_ids": training_ids}, return_tensors="pt")
    with torch.inference_mode():
        expected = bank.models["rte"].generate(**padded, max_new_tokens=3, do_sample=False)
    assert generated == tokenizer.batch_decode(expected, skip_special_tokens=True)

    hard = AdapterBank(base, tokenizer, max_source_length=32)  # a limit given to the bank is a hard one
    hard.add("rte", exported_with(dm))
    short = {"sentence1": "A cat.", "sentence2": "An animal."}
    with pytest.raises(UserError) as error:
        hard.generate("rte", [short, records[0]])
    assert str(error.value).startswith("adapter 'rte': input 1 is ")
    assert "more than max_source_length 32; shorten it (inputs are never cut), or raise max_source_length" in str(
        error.value
    )


def test_a_source_text_is_cut_at_the_end_but_refused_by_fields_truncation(tmp_path, tokenizer, base):
    bank = AdapterBank(base, tokenizer)
    record = {"sentence1": "A cat sat on the mat " * 6, "sentence2": "An animal sat."}
    for mode in ("end", "fields"):
        dm = TextToTextDataModule(
            "rte",
            str(DEMO_MODEL),
            data_dir=str(DEMO_DATA / "rte"),
            max_source_length=24,
            truncation=mode,
            cache_dir=str(tmp_path),
        )
        bank.add(mode, exported_with(dm))
    text = bank.source("end", record)
    assert bank.input_ids("end", text) == tokenizer(text, max_length=24, truncation=True)["input_ids"]
    assert len(bank.input_ids("fields", record)) == 24  # a record: its fields are cut
    with pytest.raises(UserError) as error:
        bank.generate("fields", [text])
    message = str(error.value)
    assert "\n" not in message and message.startswith("adapter 'fields': input 0 is ")
    assert "more than max_source_length 24; it trained with truncation fields" in message
    assert "pass the input as a record (sentence1, sentence2)" in message


def test_an_export_without_data_settings_refuses_inputs_over_512_tokens(tokenizer, base):
    bank = AdapterBank(base, tokenizer)
    bank.add("old", random_export("compacter", "rte", 1))  # no data settings, as exports before them
    assert bank.exports["old"].data is None
    short = {"sentence1": "A cat.", "sentence2": "An animal."}
    long = {"sentence1": "A cat sat on the mat. " * 60, "sentence2": "An animal."}
    assert len(bank.generate("old", [short])) == 1
    with pytest.raises(UserError) as error:
        bank.generate("old", [long])
    assert "more than max_source_length 512; shorten it: its export records no training settings" in str(error.value)


def test_an_adapter_trained_on_another_template_refuses_records(tokenizer, base):
    export = random_export("compacter", "rte", 1)
    export.config["data"] = {
        "task": "rte",
        "template": "premise: {sentence1} hypothesis: {sentence2}",
        "max_source_length": 128,
        "truncation": "end",
    }
    bank = AdapterBank(base, tokenizer)
    bank.add("rte", export)
    with pytest.raises(UserError, match="trained on inputs rendered as 'premise: {sentence1} hypothesis"):
        bank.generate("rte", [{"sentence1": "A cat.", "sentence2": "An animal."}])
    assert len(bank.generate("rte", ["premise: A cat. hypothesis: An animal."])) == 1  # texts as it trained
