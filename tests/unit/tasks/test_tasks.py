"""Tests for compacter_pl.tasks and compacter_pl.data.splits: each task of the paper as text-to-text (template,
targets, labels, metrics, split rule; the paper's Section 5) and the paper's splits."""

import datasets
import pytest
import torch

from compacter_pl.data import sources
from compacter_pl.data.splits import hold_out_validation, split_validation_in_half, subsample
from compacter_pl.errors import UserError
from compacter_pl.metrics import METRICS
from compacter_pl.tasks import TASKS, get_task
from compacter_pl.tasks.base import HubDataset, plain_text
from compacter_pl.tasks.superglue import passage_with_highlights, strip_markup
from tests.helpers import DEMO_DATA

GLUE = {"cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte"}
SUPER_GLUE = {"boolq", "cb", "copa", "multirc", "record", "wic"}
SMALL = {"rte", "mrpc", "stsb", "cola", "copa", "wic", "cb", "boolq", "multirc"}  # fewer than 10k training examples


def test_registry_holds_the_fourteen_tasks_of_the_paper():
    assert set(TASKS) == GLUE | SUPER_GLUE
    assert {n for n, t in TASKS.items() if t.small} == SMALL
    for name, task in TASKS.items():
        assert task.hub_path == ("nyu-mll/glue" if name in GLUE else "aps/super_glue")
        assert task.source_length == (128 if name in GLUE else 512 if name == "record" else 256)
        assert task.test_split == ("validation_matched" if name == "mnli" else "validation")


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(UserError, match=r"unknown task 'wnli'; known tasks: boolq, cb, cola"):
        get_task("wnli")


# One record per task in the Hub's schema, the source the paper's template makes of it, and its target.
TEMPLATES = {
    "cola": ({"sentence": "The book was read.", "label": 1, "idx": 0}, "sentence: The book was read.", "1"),
    "sst2": ({"sentence": "a charming journey . ", "label": 1, "idx": 0}, "sentence: a charming journey .", "1"),
    "mrpc": ({"sentence1": "A b.", "sentence2": "C d.", "label": 0, "idx": 0}, "sentence1: A b. sentence2: C d.", "0"),
    "qqp": ({"question1": "Why?", "question2": "How?", "label": 1, "idx": 0}, "question1: Why? question2: How?", "1"),
    "stsb": ({"sentence1": "A.", "sentence2": "B.", "label": 4.75, "idx": 0}, "sentence1: A. sentence2: B.", "4.8"),
    "mnli": ({"premise": "P.", "hypothesis": "H.", "label": 2, "idx": 0}, "premise: P. hypothesis: H.", "2"),
    "qnli": ({"question": "Q?", "sentence": "S.", "label": 1, "idx": 0}, "question: Q? sentence: S.", "1"),
    "rte": ({"sentence1": "P.", "sentence2": "H.", "label": 0, "idx": 0}, "sentence1: P. sentence2: H.", "0"),
    "boolq": ({"question": "is it", "passage": "It is.", "idx": 0, "label": 1}, "question: is it passage: It is.", "1"),
    "cb": ({"premise": "P.", "hypothesis": "H.", "idx": 0, "label": 2}, "premise: P. hypothesis: H.", "2"),
    "copa": (
        {"premise": "It rained.", "choice1": "Wet.", "choice2": "Dry.", "question": "effect", "idx": 0, "label": 0},
        "premise: It rained. choice1: Wet. choice2: Dry. question: effect",
        "0",
    ),
    "wic": (
        {
            "word": "bank",
            "sentence1": "A bank.",
            "sentence2": "The bank.",
            "start1": 2,
            "start2": 4,
            "end1": 6,
            "end2": 8,
            "idx": 0,
            "label": 1,
        },
        "sentence1: A bank. sentence2: The bank. word: bank",
        "1",
    ),
    "multirc": (
        {
            "paragraph": "<b>Sent 1: </b>Tom ran.<br><b>Sent 2: </b>He won.<br>",
            "question": "Who ran?",
            "answer": "Tom",
            "idx": {"paragraph": 3, "question": 17, "answer": 40},
            "label": 1,
        },
        "question: Who ran? answer: Tom paragraph: Tom ran. He won.",
        "1",
    ),
    "record": (
        {
            "passage": "Tom won the race.\n@highlight\nTom wins\n@highlight\nA great day!",
            "query": "@placeholder won.",
            "entities": ["Tom", "race", "Tom"],
            "answers": ["Tom"],
            "idx": {"passage": 0, "query": 0},
        },
        "query: @placeholder won. entities: Tom, race passage: Tom won the race. Tom wins. A great day!",
        "Tom",
    ),
}


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_template_renders_field_value_pairs_and_the_target(name):
    record, source, target = TEMPLATES[name]
    task = get_task(name)
    (example,) = task.examples(record, training=False)
    assert example.source == source
    assert example.target == target
    if task.targets is not None:
        assert task.targets[example.label] == target
        assert task.decode(f" {target} ") == example.label  # a generated target decodes back to its class


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_rendering_gives_the_character_span_of_every_value(name):
    """What `data.truncation fields` shortens: each value's span in the source, the `name: ` prefixes outside."""
    record, source, _ = TEMPLATES[name]
    task = get_task(name)
    rendered, spans = task.rendered(record)
    assert rendered == source == task.source(record)
    (example,) = task.examples(record, training=False)
    assert example.spans == spans and len(spans) == len(task.input_fields)
    position = 0
    for field, (start, end) in zip(task.input_fields, spans, strict=True):
        prefix = f"{field}: "
        assert source[start - len(prefix) : start] == prefix and start - len(prefix) == position
        assert source[start:end] == task.field_formats.get(field, plain_text)(record[field])
        position = end + 1  # the joining space


def test_an_empty_value_has_an_empty_span_between_the_prefixes():
    source, spans = get_task("rte").rendered({"sentence1": " ", "sentence2": "H."})
    assert source == "sentence1:  sentence2: H."
    assert spans == ((11, 11), (23, 25))


def test_targets_are_class_ids_as_strings():
    for name, task in TASKS.items():
        if name == "stsb":
            assert task.targets[:3] == ("0.0", "0.2", "0.4") and task.targets[-1] == "5.0"
        elif name == "record":
            assert task.targets is None
        else:
            assert task.targets == tuple(str(i) for i in range(len(task.targets)))
            assert len(task.label_names) == len(task.targets)
    assert get_task("cb").label_names == ("entailment", "contradiction", "neutral")  # the Hub's ids
    assert get_task("mnli").label_names == ("entailment", "neutral", "contradiction")


@pytest.mark.parametrize(
    "score,target",
    [
        (0.0, "0.0"),
        (0.083, "0.0"),
        (0.25, "0.2"),
        (0.636, "0.6"),
        (3.8, "3.8"),
        (4.75, "4.8"),
        (4.95, "5.0"),
        (5.0, "5.0"),
        (2, "2.0"),
        (0.5, "0.4"),
        (0.7, "0.8"),
        (4.9, "4.8"),
    ],
)  # ties go to the even fifth
def test_stsb_score_rounds_to_the_nearest_fifth_with_one_decimal(score, target):
    (example,) = get_task("stsb").examples({"sentence1": "a", "sentence2": "b", "label": score}, training=True)
    assert example.target == target


def test_stsb_has_one_class_per_fifth_from_0_to_5():
    task = get_task("stsb")
    assert task.targets == tuple(f"{i / 5:.1f}" for i in range(26))
    assert task.ordinal and not get_task("rte").ordinal


@pytest.mark.parametrize(
    "name,label",
    [
        ("rte", 2),
        ("rte", -1),
        ("cb", 3),
        ("cola", 1.5),
        ("boolq", True),
        ("mnli", None),
        ("stsb", 5.3),
        ("stsb", -0.4),
        ("stsb", "high"),
    ],
)
def test_a_label_outside_the_classes_is_a_value_error_naming_it(name, label):
    record = dict(TEMPLATES[name][0], label=label)
    with pytest.raises(ValueError, match="label"):
        get_task(name).examples(record, training=True)


def test_a_label_outside_the_classes_names_the_classes():
    with pytest.raises(ValueError, match=r"label 3 is not one of the classes of cb \(0 entailment, 1 contradiction"):
        get_task("cb").examples(dict(TEMPLATES["cb"][0], label=3), training=True)


def test_an_empty_field_is_a_value_error():
    with pytest.raises(ValueError, match="column 'hypothesis' is empty"):
        get_task("cb").examples(dict(TEMPLATES["cb"][0], hypothesis=None), training=True)


def test_copa_keeps_cause_or_effect():
    record = dict(TEMPLATES["copa"][0], question="cause")
    assert get_task("copa").examples(record, training=False)[0].source.endswith("question: cause")


def test_multirc_groups_answer_options_by_question_and_drops_markup():
    (example,) = get_task("multirc").examples(TEMPLATES["multirc"][0], training=False)
    assert example.group == 17
    assert "<" not in example.source and "Sent 1" not in example.source
    assert strip_markup("<b>Sent 12: </b>A.<br/><B>Sent 13:</B> B. <br>") == "A. B."
    assert strip_markup("No markup at all .  ") == "No markup at all ."


def test_record_trains_on_each_gold_answer_and_evaluates_against_all():
    task = get_task("record")
    record = dict(TEMPLATES["record"][0], answers=["Tracy Morgan", "Morgan", "Tracy Morgan"])
    training = task.examples(record, training=True)
    assert [e.target for e in training] == ["Tracy Morgan", "Morgan"]  # one per distinct gold answer
    assert all(e.label == -1 and e.answers == (e.target,) for e in training)
    (evaluation,) = task.examples(record, training=False)
    assert evaluation.answers == ("Tracy Morgan", "Morgan")
    assert evaluation.source == training[0].source


def test_record_without_gold_answers_is_a_value_error():
    with pytest.raises(ValueError, match="no gold answer"):
        get_task("record").examples(dict(TEMPLATES["record"][0], answers=[]), training=True)


def test_record_passage_highlights_become_sentences():
    assert (
        passage_with_highlights("Body text.\n@highlight\nFirst one\n@highlight\nIt's over!")
        == "Body text. First one. It's over!"
    )
    hub_style = "Body text.\n- First one\n- Second one"  # the Hub's parquet writes highlights as "- " lines
    assert passage_with_highlights(hub_style) == "Body text. - First one - Second one"


@pytest.mark.parametrize("name", sorted(TASKS))
def test_invalid_generations_count_as_wrong(name):
    task = get_task(name)
    if task.targets is None:
        scored = task.score(["nobody", ""], torch.tensor([-1, -1]), torch.tensor([-1, -1]), [["Tom"], ["Bob", "Carl"]])
        assert scored.exact_match.tolist() == [0.0, 0.0] and scored.token_f1.tolist() == [0.0, 0.0]
        return
    labels = torch.arange(len(task.targets))
    invalid = ["not a label", "", "yes", "0 1", "5.00"]
    texts = [invalid[i % len(invalid)] for i in range(len(labels))]
    scored = task.score(texts, labels, torch.full_like(labels, -1))
    assert (scored.preds != scored.target).all()
    assert scored.exact_match.sum() == 0
    assert not scored.valid.any() and (scored.preds == len(task.targets)).all()  # the marker of "no label"
    for metric in task.metrics:  # every metric reads an input that counts it wrong
        if metric in ("accuracy", "f1", "question_exact_match"):
            preds, target = METRICS[metric].inputs(scored)[:2]
            assert (preds != target).all(), metric


def test_valid_generations_are_marked_valid():
    task = get_task("cb")
    scored = task.score([" 2", "0", "1 "], torch.tensor([2, 1, 1]), torch.tensor([-1, -1, -1]))
    assert scored.valid.all() and scored.preds.tolist() == [2, 0, 1]


def test_an_invalid_stsb_generation_has_no_value_and_the_correlations_read_minus_one():
    task = get_task("stsb")
    scored = task.score(["high", "4.8", "low"], torch.tensor([25, 24, 0]), torch.tensor([-1, -1, -1]))
    assert scored.valid.tolist() == [False, True, False]
    for metric in ("pearson", "spearman"):  # the authors' string_to_float(default=-1.)
        predicted, gold = METRICS[metric].inputs(scored)
        assert predicted.tolist() == pytest.approx([-1.0, 4.8, -1.0])
        assert gold.tolist() == pytest.approx([5.0, 4.8, 0.0])


def test_every_task_names_metrics_that_fit_its_targets():
    for name, task in TASKS.items():
        assert task.metrics and set(task.metrics) <= set(METRICS)
        if task.targets is None:
            assert set(task.metrics) == {"exact_match", "token_f1"}
        elif {"f1", "matthews"} & set(task.metrics):
            assert len(task.targets) == 2, name
    expected = {
        "cola": ("matthews",),
        "mrpc": ("accuracy", "f1"),
        "qqp": ("accuracy", "f1"),
        "stsb": ("pearson", "spearman"),
        "cb": ("accuracy", "macro_f1"),
        "multirc": ("f1", "question_exact_match"),
        "record": ("exact_match", "token_f1"),
    }
    for name, task in TASKS.items():
        assert task.metrics == expected.get(name, ("accuracy",)), name


# --- the paper's splits -------------------------------------------------------------------------


def numbered(n: int) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"n": list(range(n))})


def ns(records: datasets.Dataset) -> list[int]:
    return list(records["n"])


def test_validation_is_shuffled_and_halved_with_the_data_seed():
    validation, test = split_validation_in_half(numbered(11), seed=3)
    assert len(validation) == 5 and len(test) == 6
    assert sorted(ns(validation) + ns(test)) == list(range(11))
    assert ns(validation) != list(range(5))  # shuffled
    again, _ = split_validation_in_half(numbered(11), seed=3)
    other, _ = split_validation_in_half(numbered(11), seed=4)
    assert ns(again) == ns(validation) and ns(other) != ns(validation)


def test_grouped_halving_keeps_every_group_in_one_half():
    groups = [g for g in range(9) for _ in range(g % 3 + 2)]  # 9 questions with 2-4 answer options
    records = numbered(len(groups))
    validation, test = split_validation_in_half(records, seed=0, groups=groups)
    first, second = {groups[i] for i in ns(validation)}, {groups[i] for i in ns(test)}
    assert not first & second and first | second == set(range(9)) and len(first) == 4
    assert len(validation) + len(test) == len(groups)


def test_large_tasks_hold_out_validation_from_train():
    train, validation = hold_out_validation(numbered(50), seed=1, size=10)
    assert len(train) == 40 and len(validation) == 10
    assert not set(ns(train)) & set(ns(validation))
    assert ns(hold_out_validation(numbered(50), seed=1, size=10)[1]) == ns(validation)


def test_holding_out_more_than_train_has_is_a_user_error_naming_the_option():
    with pytest.raises(UserError, match=r"has 50 records, too few to hold out 1000.*data.validation_size"):
        hold_out_validation(numbered(50), seed=1, size=1000)


def test_train_size_subsamples_with_the_seed_and_fails_when_too_large():
    assert ns(subsample(numbered(30), 10, seed=5)) == ns(subsample(numbered(30), 10, seed=5))
    assert ns(subsample(numbered(30), 10, seed=5)) != ns(subsample(numbered(30), 10, seed=6))
    assert len(subsample(numbered(30), 30, seed=5)) == 30
    with pytest.raises(UserError, match=r"train_size=31 is larger than the training split \(30 examples\)"):
        subsample(numbered(30), 31, seed=5)


# --- where records come from --------------------------------------------------------------------


@pytest.mark.parametrize("name,split", [("mnli", "validation_matched"), ("record", "train"), ("cola", "validation")])
def test_hub_splits_are_loaded_from_the_pinned_revision(monkeypatch, name, split):
    task = get_task(name)
    calls = []

    def fake_load_dataset(path, config, split, revision):  # records of the task's schema: the demo file's
        calls.append((path, config, split, revision))
        return datasets.Dataset.from_json(str(DEMO_DATA / config / f"{split}.jsonl"))

    monkeypatch.setattr(sources.datasets, "load_dataset", fake_load_dataset)
    sources.load_split(task, split, data_dir=None, revision=None)
    sources.load_split(task, split, data_dir=None, revision="main")
    assert calls == [
        (task.hub_path, task.hub_config, split, task.dataset.revision),
        (task.hub_path, task.hub_config, split, "main"),
    ]
    assert task.hub_path in ("nyu-mll/glue", "aps/super_glue")


def test_every_task_names_its_benchmark_its_display_name_and_a_pinned_revision():
    for task in TASKS.values():
        assert task.benchmark == ("GLUE" if task.hub_path == "nyu-mll/glue" else "SuperGLUE")
        assert len(task.dataset.revision) == 40 and int(task.dataset.revision, 16) >= 0  # a commit, not "main"
        assert task.display_name.lower().replace("-", "") == task.name
    assert TASKS["stsb"].display_name == "STS-B" and TASKS["record"].display_name == "ReCoRD"


def test_a_dataset_without_a_pinned_revision_is_refused():
    with pytest.raises(TypeError, match="pin a revision"):
        HubDataset("someone/new_benchmark", "", "New")


def test_an_unreachable_hub_says_how_to_use_local_files(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'aps/super_glue' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(sources.datasets, "load_dataset", offline)
    with pytest.raises(UserError, match=r"cannot load aps/super_glue \(cb, train\) .* pass --data\.data_dir DIR"):
        sources.load_split(get_task("cb"), "train", data_dir=None, revision=None)
