"""The RTE data path on the demo data: the paper's split, the text-to-text rendering, caching."""

import datasets

from compacter_pl.data import TextToTextDataModule
from compacter_pl.data.splits import split_validation_in_half
from compacter_pl.tasks import get_task
from tests.helpers import DEMO_DATA, DEMO_MODEL


def make_datamodule(tmp_path, **kwargs) -> TextToTextDataModule:
    args = dict(
        task="rte", tokenizer=str(DEMO_MODEL), data_dir=str(DEMO_DATA / "rte"), cache_dir=str(tmp_path), batch_size=8
    )
    return TextToTextDataModule(**{**args, **kwargs})


def test_rte_record_renders_as_the_paper_does():
    record = {"sentence1": "A cat sat.", "sentence2": "A cat did not sit.", "label": 1, "idx": 0}
    (example,) = get_task("rte").examples(record, training=True)
    assert example.source == "sentence1: A cat sat. sentence2: A cat did not sit."
    assert example.target == "1"
    assert example.label == 1


def test_validation_halves_are_disjoint_cover_and_are_stable_for_a_seed():
    validation = datasets.Dataset.from_dict({"idx": list(range(277))})
    first, second = split_validation_in_half(validation, seed=42)
    assert (len(first), len(second)) == (138, 139)
    assert set(first["idx"]).isdisjoint(second["idx"])
    assert set(first["idx"]) | set(second["idx"]) == set(range(277))
    again, _ = split_validation_in_half(validation, seed=42)
    assert again["idx"] == first["idx"]
    other, _ = split_validation_in_half(validation, seed=7)
    assert other["idx"] != first["idx"]


def test_datamodule_splits_rte_as_the_paper_and_caches_tokenization(tmp_path):
    dm = make_datamodule(tmp_path)
    dm.prepare_data()
    dm.setup("fit")
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 600, "validation": 100, "test": 100}
    assert dm.max_target_tokens <= 3  # "0" / "1" and the end-of-sequence token
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape[1] == int(batch["attention_mask"].sum(1).max())  # padded to the batch only
    assert all(1 in row.tolist() for row in batch["labels"])  # every target ends with </s>

    second = make_datamodule(tmp_path)
    assert second.cache_path == dm.cache_path  # same tokenizer, lengths, data and split: same cache entry
    changed = make_datamodule(tmp_path, max_source_length=16)
    assert changed.cache_path != dm.cache_path
    reseeded = make_datamodule(tmp_path, data_seed=1)
    assert reseeded.cache_path != dm.cache_path


def test_the_same_data_seed_gives_the_same_test_split(tmp_path):
    splits = []
    for run in range(2):
        dm = make_datamodule(tmp_path / str(run))
        dm.setup("test")
        splits.append(dm.splits["test"]["input_ids"])
    assert splits[0] == splits[1]
