"""Tests for compacter_pl.metrics: the paper's metrics as torchmetrics, fed by `Task.score` (the paper's Section 5)."""

import inspect
import math
import random
import warnings

import pytest
import scipy.stats
import sklearn.metrics
import torch

from compacter_pl.data import TextToTextDataModule
from compacter_pl.data.datamodule import paper_splits, render
from compacter_pl.data.sources import load_local_split
from compacter_pl.metrics import METRICS, build_metrics, update_metrics
from compacter_pl.metrics.confusion import MacroF1, MatthewsCorrCoef
from compacter_pl.metrics.correlation import PearsonCorrCoef, SpearmanCorrCoef
from compacter_pl.metrics.grouped import GroupExactMatch
from compacter_pl.metrics.squad import MeanOverQueries, best_exact_match, best_token_f1, normalize_answer
from compacter_pl.tasks import TASKS, get_task
from compacter_pl.training.module import TextToTextModule
from tests.helpers import DEMO_DATA, DEMO_MODEL


def compute(name: str, texts, labels, groups=None, answers=()) -> dict[str, float]:
    """Score generated texts as the LightningModule does and compute every metric of the task."""
    task = get_task(name)
    labels = torch.as_tensor(labels)
    groups = torch.full_like(labels, -1) if groups is None else torch.as_tensor(groups)
    metrics = build_metrics(task)
    update_metrics(metrics, task.score(texts, labels, groups, answers))
    return {k: float(m.compute()) for k, m in metrics.items()}


@pytest.mark.parametrize("name", sorted(TASKS))
def test_gold_targets_score_perfectly_on_the_demo_data(name):
    task = get_task(name)
    records = load_local_split(task, DEMO_DATA / task.hub_config, task.test_split)
    examples = render(task, records, training=False, where="demo")
    scores = compute(name, examples["target"], examples["label"], examples["group"], examples["answers"])
    assert set(scores) == set(task.metrics)
    assert scores == pytest.approx({m: 1.0 for m in task.metrics})


def test_invalid_generations_score_zero():
    assert compute("mrpc", ["yes", "", "2"], [1, 0, 1]) == {"accuracy": 0.0, "f1": 0.0}
    assert compute("cola", ["maybe"] * 4, [0, 1, 0, 1])["matthews"] == 0.0  # one (invalid) class predicted


def test_accuracy_and_positive_class_f1():
    # gold 1 1 0 0, predicted 1 0 1 0: one true positive, one false positive, one false negative
    assert compute("qqp", ["1", "0", "1", "0"], [1, 1, 0, 0]) == pytest.approx({"accuracy": 0.5, "f1": 0.5})


def test_cb_macro_f1_averages_the_three_classes():
    scores = compute("cb", ["0", "1", "1", "1", "2", "0"], [0, 0, 1, 1, 2, 2])
    per_class = [2 * 1 / (2 * 1 + 1 + 1), 2 * 2 / (2 * 2 + 1 + 0), 2 * 1 / (2 * 1 + 0 + 1)]
    assert scores["macro_f1"] == pytest.approx(sum(per_class) / 3)
    assert scores["accuracy"] == pytest.approx(4 / 6)


def test_stsb_correlations_read_the_scores_not_the_class_ids():
    task = get_task("stsb")
    gold = ["0.4", "1.0", "2.6", "3.8", "5.0"]
    predicted = ["0.0", "2.8", "2.2", "4.6", "4.8"]
    scores = compute("stsb", predicted, [task.targets.index(t) for t in gold])
    values = torch.tensor([[float(t) for t in gold], [float(t) for t in predicted]])
    assert scores["pearson"] == pytest.approx(float(torch.corrcoef(values)[0, 1]), abs=1e-5)
    ranks = values.argsort(dim=1).argsort(dim=1).float()  # no ties here: Spearman is Pearson of the ranks
    assert scores["spearman"] == pytest.approx(float(torch.corrcoef(ranks)[0, 1]), abs=1e-5)
    assert scores["spearman"] == pytest.approx(0.9)  # one swapped pair among 5


def test_multirc_exact_match_needs_every_option_of_a_question_right():
    # question 7: both options right; question 9: one of three wrong
    scores = compute("multirc", ["1", "0", "1", "1", "0"], [1, 0, 1, 0, 0], groups=[7, 7, 9, 9, 9])
    assert scores["question_exact_match"] == pytest.approx(0.5)
    assert scores["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 0))  # F1 over all answer options


def test_question_exact_match_is_the_same_when_a_question_is_split_across_devices():
    preds, target, groups = (
        torch.tensor([1, 0, 1, 1, 0, 1]),
        torch.tensor([1, 0, 1, 0, 0, 1]),
        torch.tensor([1, 1, 2, 2, 3, 3]),
    )
    whole = GroupExactMatch()
    whole.update(preds, target, groups)
    rank0, rank1 = GroupExactMatch(), GroupExactMatch()
    rank0.update(preds[::2], target[::2], groups[::2])  # every question has options on both ranks
    rank1.update(preds[1::2], target[1::2], groups[1::2])
    rank0.merge_state(rank1)  # what the distributed sync does: states concatenated
    assert float(rank0.compute()) == float(whole.compute()) == pytest.approx(2 / 3)


def test_squad_normalisation_drops_case_punctuation_and_articles():
    assert normalize_answer("  The Eiffel-Tower, an  icon! ") == "eiffeltower icon"
    assert best_exact_match("the tracy morgan.", ["Morgan", "Tracy Morgan"]) == 1.0
    assert best_token_f1("Morgan Freeman", ["Tracy Morgan", "Morgan"]) == pytest.approx(2 / 3)
    assert best_exact_match("anything", []) == 0.0


def test_record_scores_each_query_against_all_its_gold_answers():
    answers = [["Tracy Morgan", "Morgan"], ["Morgan"], ["Chelsea"]]
    scores = compute("record", ["Tracy Morgan", "Morgan Freeman", "Arsenal"], [-1, -1, -1], answers=answers)
    assert scores == pytest.approx({"exact_match": 1 / 3, "token_f1": (1 + 2 / 3 + 0) / 3})


def test_mean_over_queries_syncs_sums_and_counts():
    rank0, rank1 = MeanOverQueries(), MeanOverQueries()
    rank0.update(torch.tensor([1.0, 0.0, 1.0]))
    rank1.update(torch.tensor([0.0]))
    rank0.merge_state(rank1)
    assert float(rank0.compute()) == pytest.approx(0.5)
    assert float(MeanOverQueries().compute()) == 0.0  # no queries: no score, and no NaN


def test_every_metric_of_every_task_gives_one_devices_value_when_its_examples_are_split_across_two():
    generator = torch.Generator().manual_seed(0)
    for name, task in TASKS.items():
        n = 24
        if task.targets is None:
            answers = [[f"answer {i}", f"alias {i}"] for i in range(n)]
            texts = [
                a[int(torch.randint(2, (), generator=generator))] if i % 3 else "wrong" for i, a in enumerate(answers)
            ]
            labels = torch.full((n,), -1)
        else:
            answers = [[] for _ in range(n)]
            labels = torch.randint(len(task.targets), (n,), generator=generator)
            picks = torch.randint(len(task.targets) + 1, (n,), generator=generator).tolist()
            texts = [task.targets[k] if k < len(task.targets) else "not a label" for k in picks]
        groups = torch.arange(n) // 3 if task.group_of else torch.full((n,), -1)
        one, first, second = build_metrics(task), build_metrics(task), build_metrics(task)
        update_metrics(one, task.score(texts, labels, groups, answers))
        half = 12  # a group boundary: a MultiRC question stays on one device, as the data module shards them
        update_metrics(first, task.score(texts[:half], labels[:half], groups[:half], answers[:half]))
        update_metrics(second, task.score(texts[half:], labels[half:], groups[half:], answers[half:]))
        for metric_name, metric in first.items():
            assert metric_name in METRICS
            metric.merge_state(second[metric_name])  # what the distributed sync does
            expected, merged = one[metric_name].compute(), metric.compute()
            assert torch.allclose(merged.double(), expected.double(), equal_nan=True), (name, metric_name)


# --- scored as the paper's authors did (their seq2seq/metrics/metrics.py), checked against sklearn / scipy -----


@pytest.fixture(scope="module")
def modules():
    """One LightningModule (tiny demo model) per task, built on first use."""
    built = {}

    def module(name: str) -> TextToTextModule:
        if name not in built:
            built[name] = TextToTextModule(str(DEMO_MODEL), task=name)
        return built[name]

    return module


def module_scores(module: TextToTextModule, texts, labels, batch_size: int = 7) -> dict[str, float]:
    """Score generated texts exactly as the LightningModule's validation does (`Task.score` on each batch, the
    module's metrics, a NaN counted as 0 at epoch end); the epoch's `val/score` must be their mean."""
    texts, labels = list(texts), torch.as_tensor(labels)
    for start in range(0, len(texts), batch_size):
        batch_labels = labels[start : start + batch_size]
        module.outputs = lambda batch, chunk=texts[start : start + batch_size]: chunk
        module._evaluate(
            {"label": batch_labels, "group": torch.full_like(batch_labels, -1), "answers": [[] for _ in batch_labels]},
            "val",
        )
    metrics = module.metrics["val"]
    scores = {name: float(torch.nan_to_num(metric.compute().float(), nan=0.0)) for name, metric in metrics.items()}
    assert module._log_epoch_metrics("val") == pytest.approx(sum(scores.values()) / len(scores))  # and resets
    return scores


# Generations that are no label of any task (STS-B's labels are "0.0" ... "5.0", so "5.00" is invalid too).
INVALID_TEXTS = ("", "yes", "0 1", "5.00", "neutral", "-1")


def random_case(rng: random.Random, targets, invalid_share: float, smallest: int = 1) -> tuple[list[int], list[str]]:
    """Gold labels and generated texts, a share of them invalid; some cases degenerate: one class predicted,
    one gold class, or a class absent from the gold labels."""
    n, k = rng.randint(smallest, 40), len(targets)
    mode = rng.choice(["mixed", "one_predicted", "one_gold", "class_absent"])
    gold_classes = list(range(k))
    if mode == "one_gold":
        gold_classes = [rng.randrange(k)]
    elif mode == "class_absent":
        gold_classes.remove(rng.randrange(k))
    labels = [rng.choice(gold_classes) for _ in range(n)]
    constant = targets[rng.randrange(k)]
    texts = [constant if mode == "one_predicted" else rng.choice(targets) for _ in range(n)]
    texts = [rng.choice(INVALID_TEXTS) if rng.random() < invalid_share else t for t in texts]
    return labels, texts


CASES = 150
INVALID_SHARES = (0.0, 0.25)


def valid_or(texts, targets, invalid):
    """Each generated text (stripped, as the authors' post-processor does) if it is a label, else `invalid`."""
    return [t.strip() if t.strip() in targets else invalid for t in texts]


@pytest.mark.parametrize("invalid_share", INVALID_SHARES)
def test_cola_matthews_is_sklearns_an_invalid_generation_a_third_class(modules, invalid_share):
    module, rng = modules("cola"), random.Random(13)
    for _ in range(CASES):
        labels, texts = random_case(rng, ("0", "1"), invalid_share)
        # the authors call sklearn on the strings: a generation that is no label is a class of its own
        expected = sklearn.metrics.matthews_corrcoef([str(g) for g in labels], valid_or(texts, ("0", "1"), "bad"))
        assert module_scores(module, texts, labels)["matthews"] == pytest.approx(expected, abs=1e-6), (labels, texts)


def test_cola_matthews_is_zero_when_one_class_is_predicted_or_gold():
    assert compute("cola", ["1"] * 5, [0, 1, 1, 0, 1])["matthews"] == 0.0  # the constant predictor
    assert compute("cola", ["0", "1", "1"], [1, 1, 1])["matthews"] == 0.0  # one gold class
    assert compute("cola", ["1", "0", "1", "0"], [1, 1, 0, 0])["matthews"] == 0.0  # as good as chance
    # gold 1 1 1 0 0, predicted 1 1 0 0 1: tp 2, fn 1, tn 1, fp 1: (2*1 - 1*1) / sqrt(3*2*3*2)
    assert compute("cola", ["1", "1", "0", "0", "1"], [1, 1, 1, 0, 0])["matthews"] == pytest.approx(1 / 6)


def test_the_constant_predictor_scores_matthews_zero_on_the_real_cola_validation_half(glue_sample, modules):
    task = get_task("cola")
    data_seed = inspect.signature(TextToTextDataModule).parameters["data_seed"].default
    splits = paper_splits(task, str(glue_sample / "glue" / "cola"), None, data_seed, train_size=None, seed=0)
    labels = render(task, splits["validation"], training=False, where="validation")["label"]
    assert len(labels) == 1043 // 2 and 0 < sum(labels) < len(labels)  # both classes are gold
    assert module_scores(modules("cola"), ["1"] * len(labels), labels) == {"matthews": 0.0}


@pytest.mark.parametrize("invalid_share", INVALID_SHARES)
def test_cb_macro_f1_is_sklearns_over_all_three_classes(modules, invalid_share):
    module, rng = modules("cb"), random.Random(5)
    for _ in range(CASES):
        labels, texts = random_case(rng, ("0", "1", "2"), invalid_share)
        predicted = [int(t) for t in valid_or(texts, ("0", "1", "2"), "-1")]  # -1: no class of labels=range(3)
        expected = sklearn.metrics.f1_score(labels, predicted, labels=range(3), average="macro", zero_division=0)
        scores = module_scores(module, texts, labels)
        assert scores["macro_f1"] == pytest.approx(expected, abs=1e-6), (labels, texts)
        assert scores["accuracy"] == pytest.approx(sklearn.metrics.accuracy_score(labels, predicted))


def test_cb_macro_f1_counts_a_class_absent_from_the_half_as_f1_zero():
    # neutral (2) is neither gold nor predicted: its F1 is 0 and still one of the three averaged
    assert compute("cb", ["0", "1", "1", "0"], [0, 1, 1, 0])["macro_f1"] == pytest.approx(2 / 3)
    # gold 0 0 1 1, predicted 0 1 1 2: F1 = 2tp / (2tp + fp + fn): class 0 2/3, class 1 2/4, class 2 (never gold,
    # one false positive) 0
    assert compute("cb", ["0", "1", "1", "2"], [0, 0, 1, 1])["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)


def test_cola_counts_an_invalid_generation_as_a_third_class():
    # classes 0, 1, x; gold 1 1 0 0, predicted 1 x 0 0: cov(gold, pred) = 3*4 - (2*2 + 2*1), var(pred) = 16 - (4
    # + 1 + 1), var(gold) = 16 - (4 + 4)
    assert compute("cola", ["1", "x", "0", "0"], [1, 1, 0, 0])["matthews"] == pytest.approx(6 / (10 * 8) ** 0.5)


def test_cb_counts_an_invalid_generation_as_a_miss_of_its_gold_class():
    # gold 0 0 1 2, predicted 0 x 1 2: class 0 misses one (F1 2/3), classes 1 and 2 are right; no false positive
    assert compute("cb", ["0", "x", "1", "2"], [0, 0, 1, 2]) == pytest.approx(
        {"accuracy": 3 / 4, "macro_f1": (2 / 3 + 1 + 1) / 3}
    )


@pytest.mark.parametrize("invalid_share", INVALID_SHARES)
def test_stsb_correlations_are_scipys_an_invalid_generation_the_value_minus_one(modules, invalid_share):
    module, rng = modules("stsb"), random.Random(21)
    targets = get_task("stsb").targets
    for _ in range(CASES):
        labels, texts = random_case(rng, targets, invalid_share, smallest=2)
        gold = [float(targets[g]) for g in labels]
        predicted = [float(t) for t in valid_or(texts, targets, "-1.0")]  # the authors' string_to_float default
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant input: scipy warns and returns NaN
            expected = {
                "pearson": scipy.stats.pearsonr(gold, predicted)[0],
                "spearman": scipy.stats.spearmanr(gold, predicted)[0],
            }
        expected = {name: 0.0 if math.isnan(value) else value for name, value in expected.items()}  # as the authors
        assert module_scores(module, texts, labels) == pytest.approx(expected, abs=1e-5), (gold, texts)


def test_an_invalid_stsb_generation_is_the_value_minus_one():
    # gold 0 2 4, predicted 0 2 -1: Pearson -2 / sqrt(14/3 * 8); ranks 2 3 1 against 1 2 3: Spearman -1/2
    scores = compute("stsb", ["0.0", "2.0", "high"], [0, 10, 20])
    assert scores == pytest.approx({"pearson": -2 / (14 / 3 * 8) ** 0.5, "spearman": -0.5}, abs=1e-6)


@pytest.mark.parametrize("invalid_share", INVALID_SHARES)
def test_mrpc_f1_sets_an_invalid_generation_to_the_opposite_label(modules, invalid_share):
    module, rng = modules("mrpc"), random.Random(34)
    for _ in range(CASES):
        labels, texts = random_case(rng, ("0", "1"), invalid_share)
        # the authors' f1_score_with_invalid: an invalid prediction becomes the opposite of its gold label
        predicted = [
            int(t) if t != "bad" else 1 - g for t, g in zip(valid_or(texts, ("0", "1"), "bad"), labels, strict=True)
        ]
        correct = [t.strip() == str(g) for t, g in zip(texts, labels, strict=True)]
        expected = {
            "accuracy": sum(correct) / len(correct),
            "f1": sklearn.metrics.f1_score(labels, predicted, zero_division=0),
        }
        assert module_scores(module, texts, labels) == pytest.approx(expected, abs=1e-6), (labels, texts)


def test_constant_stsb_predictions_over_several_batches_correlate_zero(modules):
    labels = [5 * i % 26 for i in range(40)]
    for batch_size in (7, 40):  # float32 running moments merged batch by batch used to leave rounding noise
        scores = module_scores(modules("stsb"), ["0.4"] * 40, labels, batch_size=batch_size)
        assert scores == {"pearson": 0.0, "spearman": 0.0}, batch_size


def test_correlations_sync_by_concatenating_values():
    preds, target = torch.tensor([0.4, 2.0, 2.0, 3.8, 5.0, 1.2]), torch.tensor([0.0, 2.2, 1.0, 4.0, 4.4, 1.2])
    for make in (PearsonCorrCoef, SpearmanCorrCoef):
        whole, rank0, rank1 = make(), make(), make()
        whole.update(preds, target)
        rank0.update(preds[::2], target[::2])
        rank1.update(preds[1::2], target[1::2])
        rank0.merge_state(rank1)
        assert float(rank0.compute()) == pytest.approx(float(whole.compute()), abs=1e-12)


def test_confusion_matrix_metrics_sync_by_summing_counts():
    preds, target = torch.tensor([0, 1, 2, 3, 1, 1, 0]), torch.tensor([0, 1, 2, 2, 0, 1, 1])
    for make in (lambda: MatthewsCorrCoef(3), lambda: MacroF1(3)):
        whole, rank0, rank1 = make(), make(), make()
        whole.update(preds, target)
        rank0.update(preds[:3], target[:3])
        rank1.update(preds[3:], target[3:])
        rank0.merge_state(rank1)  # what the distributed sync does: the confusion matrices are summed
        assert float(rank0.compute()) == float(whole.compute())
