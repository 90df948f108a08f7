"""Real GLUE and SuperGLUE records through the real pipeline: `../shared/glue-sample/hub/<glue|super_glue>/<config>`
holds them in the Hub's schema (its README says which splits are complete). Each folder is used as a local
data_dir: columns checked, records rendered, targets encoded and decoded, gold targets scored perfectly, and,
where the sample has both files, the paper's splits built by the data module; and `data.truncation fields`
against `end` on RTE and BoolQ. Skipped without the sample.
"""

import re
from pathlib import Path

import pytest
import torch

from compacter_pl.data import TextToTextDataModule
from compacter_pl.data.datamodule import SPLITS, render
from compacter_pl.data.sources import load_local_split
from compacter_pl.hub import load_tokenizer
from compacter_pl.metrics import build_metrics, update_metrics
from compacter_pl.tasks import TASKS, Task, get_task
from tests.helpers import DEMO_MODEL


def sample_folder(glue_sample: Path, task: Task) -> Path:
    return glue_sample / ("glue" if task.hub_path == "nyu-mll/glue" else "super_glue") / task.hub_config


def present_splits(folder: Path, task: Task) -> list[str]:
    return [split for split in ("train", task.test_split) if (folder / f"{split}.jsonl").is_file()]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(str(DEMO_MODEL))


def perfect_scores(task: Task, texts, labels, groups, answers) -> dict[str, float]:
    metrics = build_metrics(task)
    update_metrics(metrics, task.score(texts, torch.as_tensor(labels), torch.as_tensor(groups), answers))
    return {name: float(metric.compute()) for name, metric in metrics.items()}


def check_sources(task: Task, sources) -> None:
    """Every source is the task's `field: value` pairs in template order, without markup."""
    for source in sources[:200]:
        positions = [source.find(f"{field}: ") for field in task.input_fields]
        assert positions[0] == 0 and positions == sorted(positions), source[:200]
        assert "\n" not in source and "@highlight" not in source and "<br>" not in source


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_real_split_file_renders_encodes_and_scores_perfectly(name, glue_sample, tokenizer):
    task = get_task(name)
    folder = sample_folder(glue_sample, task)
    splits = present_splits(folder, task)
    if not splits:
        pytest.skip(f"the sample has no {name} records ({folder})")
    for split in splits:
        records = load_local_split(task, folder, split)  # checks the columns against the task
        examples = render(task, records, training=False, where=split)[:]  # a dict of lists
        assert len(examples["source"]) == len(records)  # evaluation: one example per record (ReCoRD: per query)
        check_sources(task, examples["source"])
        targets = examples["target"]
        distinct = sorted(set(targets))  # closed-set tasks have a handful: encode and decode each once
        round_trip = dict(
            zip(
                distinct,
                tokenizer.batch_decode(tokenizer(distinct)["input_ids"], skip_special_tokens=True),
                strict=True,
            )
        )
        decoded = [round_trip[target] for target in targets]
        assert decoded == targets  # the target string survives tokenization
        scores = perfect_scores(task, decoded, examples["label"], examples["group"], examples["answers"])
        assert scores == pytest.approx({metric: 1.0 for metric in task.metrics}), split
        if task.targets is not None:
            assert [task.decode(text) for text in decoded] == examples["label"]
        else:  # ReCoRD trains on every gold answer
            training = render(task, records, training=True, where=split)
            assert len(training) == sum(len(set(answers)) for answers in records["answers"][:])


@pytest.mark.parametrize("name", sorted(TASKS))
def test_data_module_builds_the_papers_splits_from_real_records(name, glue_sample, tmp_path):
    task = get_task(name)
    folder = sample_folder(glue_sample, task)
    missing = {"train", task.test_split} - set(present_splits(folder, task))
    if missing:
        pytest.skip(f"the sample lacks {name} {', '.join(sorted(missing))} (see its README)")
    original = load_local_split(task, folder, task.test_split)
    held_out = 8  # the paper holds out 1,000; the sample's large-task training sets are smaller
    module = TextToTextDataModule(
        task=name,
        tokenizer=str(DEMO_MODEL),
        data_dir=str(folder),
        train_size=24,
        validation_size=held_out,
        cache_dir=str(tmp_path),
        batch_size=4,
    )
    module.prepare_data()
    module.setup("fit")
    splits = module.splits
    if task.small:  # the original validation set, halved
        assert len(splits["validation"]) + len(splits["test"]) == len(original)
        if task.group_of is None:
            assert len(splits["validation"]) == len(original) // 2
        else:  # MultiRC: by question; no question in both halves
            validation, test = set(splits["validation"]["group"][:]), set(splits["test"]["group"][:])
            assert not validation & test
            assert len(validation) == len({idx["question"] for idx in original["idx"][:]}) // 2
    else:  # held-out training records as validation, the original validation set as test
        assert len(splits["test"]) == len(original)
        assert len(set(splits["validation"]["id"][:])) == held_out
    assert len(set(splits["train"]["id"][:])) == 24  # train_size records, drawn with the run's seed
    for split in SPLITS:
        data = splits[split][:]  # a dict of lists
        decoded = module.tokenizer.batch_decode(data["labels"], skip_special_tokens=True)
        if task.targets is not None:
            assert [task.decode(text) for text in decoded] == data["label"], split
        else:
            assert all(text == answers[0] for text, answers in zip(decoded, data["answers"], strict=True)), split
        if split != "train":
            scores = perfect_scores(task, decoded, data["label"], data["group"], data["answers"])
            assert scores == pytest.approx({metric: 1.0 for metric in task.metrics}), split
    batch = next(iter(module.val_dataloader()))
    assert batch["input_ids"].shape[0] == batch["labels"].shape[0] == len(batch["answers"]) == 4
    assert batch["input_ids"].shape[1] <= task.source_length
    longest = max(len(ids) for split in SPLITS for ids in splits[split]["labels"][:])
    assert module.max_target_tokens >= longest


@pytest.mark.parametrize("name", ["rte", "boolq"])
def test_fields_truncation_keeps_every_field_of_real_records_where_end_loses_some(name, glue_sample, tmp_path):
    """At the default lengths (128, 256) with the demo tokenizer (a small vocabulary: many more tokens per
    source than T5's), `end` cuts RTE's hypothesis entirely in many examples; BoolQ's question comes first and
    survives either way. `fields` loses no field, in the report and in what the data module caches."""
    from compacter_pl.tools.commands.truncation import truncation_report

    task = get_task(name)
    module = TextToTextDataModule(
        task=name,
        tokenizer=str(DEMO_MODEL),
        data_dir=str(sample_folder(glue_sample, task)),
        truncation="fields",
        cache_dir=str(tmp_path),
    )
    splits = truncation_report(module)["splits"]
    assert all(row["truncated"] > 0 and row["fields"]["lose_a_field"] == 0 for row in splits.values()), splits
    end_lost = {split: row["end"]["lost"] for split, row in splits.items()}
    if name == "rte":
        assert all(set(lost) == {"sentence2"} and lost["sentence2"] > 0 for lost in end_lost.values()), end_lost
    else:
        assert end_lost == {split: {} for split in SPLITS}
    module.setup("fit")
    pattern = re.compile("^" + " ".join(f"{field}: (.+?)" for field in task.input_fields) + "$")
    for split in SPLITS:
        ids = module.splits[split]["input_ids"][:]
        assert max(len(row) for row in ids) == task.source_length
        texts = module.tokenizer.batch_decode(ids, skip_special_tokens=True)
        assert all(pattern.match(text) for text in texts), split
