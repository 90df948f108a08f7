"""CONTRIBUTING.md's "Add a task", done in a test: one declaration and one registration, nothing else."""

import json

import pytest
import torch

from compacter_pl.data import TextToTextDataModule
from compacter_pl.metrics import build_metrics, update_metrics
from compacter_pl.tasks import TASKS, HubDataset, Task, register_task
from tests.helpers import DEMO_MODEL

# A new benchmark's dataset, pinned as every task's must be.
NEW_BENCH = HubDataset("someone/new_bench", "0123456789abcdef0123456789abcdef01234567", "NewBench")
SARCASM = Task(
    "sarcasm",
    NEW_BENCH,
    "sarcasm",
    "Sarcasm",
    ("comment", "parent"),
    ("0", "1"),
    ("accuracy", "f1"),
    small=True,
    label_names=("literal", "sarcastic"),
)


@pytest.fixture
def registered():
    register_task(SARCASM)
    yield SARCASM
    TASKS.pop("sarcasm", None)


def write_split(path, n: int) -> None:
    rows = [{"comment": f"oh great, another {i}", "parent": f"post {i}", "label": i % 2, "idx": i} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_a_registered_task_renders_splits_tokenizes_and_scores(tmp_path, registered):
    data = tmp_path / "sarcasm"
    data.mkdir()
    write_split(data / "train.jsonl", 20)
    write_split(data / "validation.jsonl", 10)
    dm = TextToTextDataModule(
        task="sarcasm", tokenizer=str(DEMO_MODEL), data_dir=str(data), cache_dir=str(tmp_path / "cache"), batch_size=4
    )
    dm.prepare_data()
    dm.setup("fit")
    assert [len(dm.splits[s]) for s in ("train", "validation", "test")] == [20, 5, 5]  # small: validation halved
    first = dm.tokenizer.decode(dm.splits["train"][0]["input_ids"], skip_special_tokens=True)
    assert first.startswith("comment:") and "parent:" in first
    metrics = build_metrics(registered)
    texts = ["1", "0", "maybe"]
    update_metrics(metrics, registered.score(texts, torch.tensor([1, 1, 0]), torch.tensor([-1, -1, -1])))
    assert float(metrics["accuracy"].compute()) == pytest.approx(1 / 3)
    assert registered.prediction("1") == "sarcastic" and registered.benchmark == "NewBench"


def test_a_second_task_of_the_same_name_is_refused(registered):
    other = Task("sarcasm", NEW_BENCH, "sarcasm", "Sarcasm", ("comment",), ("0", "1"), ("accuracy",), small=True)
    with pytest.raises(ValueError, match="registered already"):
        register_task(other)


def test_every_column_a_task_reads_has_a_declared_type():
    for task in TASKS.values():
        assert set(task.columns) <= set(task.schema), task.name
        assert all(required for name, (_, required) in task.schema.items() if name in task.columns)
    with pytest.raises(TypeError, match="declare the type of column 'answers' in field_types"):
        Task(
            "qa",
            NEW_BENCH,
            "qa",
            "QA",
            ("question",),
            None,
            ("exact_match",),
            small=True,
            answers_of=len,
            required_columns=("answers",),
        )
