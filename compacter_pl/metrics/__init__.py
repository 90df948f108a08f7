"""The metrics of the paper as torchmetrics, by name. A task lists names; the LightningModule builds them.

Each entry says how to build the metric for a task and which fields of a `Scored` batch it reads, so the
module updates every metric the same way and torchmetrics syncs them across devices. Model selection uses the
mean of a task's metrics on validation (the LightningModule logs each one and their mean, `val/score`).

An invalid generation (not one of the task's labels; `Scored.valid` is False) is scored as the paper's authors'
code scores it, per metric: wrong for accuracy and MultiRC exact match, the opposite label for binary F1, a class
of its own for Matthews correlation, a miss of the gold class for macro-F1, the value -1.0 for the correlations.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torchmetrics import Metric
from torchmetrics.classification import BinaryF1Score, MulticlassAccuracy

from compacter_pl.metrics.confusion import MacroF1, MatthewsCorrCoef
from compacter_pl.metrics.correlation import PearsonCorrCoef, SpearmanCorrCoef
from compacter_pl.metrics.grouped import GroupExactMatch
from compacter_pl.metrics.squad import MeanOverQueries
from compacter_pl.tasks.base import Scored, Task


@dataclass(frozen=True)
class MetricSpec:
    make: Callable[[Task], Metric]
    inputs: Callable[[Scored], tuple]
    hub_type: str  # the Hugging Face Hub's id of the metric, as a model card's model-index names it


def _classes(task: Task) -> int:
    """How many classes a closed-set task has (a class metric on a free-text task is a mistake in its table)."""
    if task.targets is None:
        raise TypeError(f"task {task.name} has free-text targets: no class metric applies")
    return len(task.targets)


def _labels(s: Scored) -> tuple:
    """Class indices; an invalid generation keeps its marker, `len(task.targets)`, never a gold label."""
    return s.preds, s.target


def _opposite_if_invalid(s: Scored) -> tuple:
    """Binary: an invalid generation becomes the opposite of its gold label (the authors' f1_score_with_invalid)."""
    return torch.where(s.valid, s.preds, 1 - s.target), s.target


INVALID_VALUE = -1.0  # STS-B: the score an invalid generation counts as


def _values(s: Scored) -> tuple:
    """Scores on the scale; an invalid generation is the value -1.0 (the authors' string_to_float default)."""
    return torch.nan_to_num(s.pred_values, nan=INVALID_VALUE), s.target_values


METRICS: dict[str, MetricSpec] = {
    # share of correct predictions; one class more than the task's for an invalid generation, always wrong
    "accuracy": MetricSpec(lambda t: MulticlassAccuracy(_classes(t) + 1, average="micro"), _labels, "accuracy"),
    # F1 of the positive class "1" (MRPC equivalent, QQP duplicate, MultiRC true answer option)
    "f1": MetricSpec(lambda t: BinaryF1Score(), _opposite_if_invalid, "f1"),
    # unweighted mean of the per-class F1 over all classes (CB: 3), a class absent from the data included (F1 0);
    # an invalid generation misses its gold class and is a false positive of none
    "macro_f1": MetricSpec(lambda t: MacroF1(_classes(t)), _labels, "f1"),
    # Matthews correlation (CoLA), sklearn's: 0 when the predictions or the gold labels are all one class; an
    # invalid generation is a class of its own (the authors' sklearn call on the generated strings)
    "matthews": MetricSpec(lambda t: MatthewsCorrCoef(_classes(t)), _labels, "matthews_correlation"),
    # correlations of the predicted and gold values (STS-B scores), scipy's (NaN if one side is constant)
    "pearson": MetricSpec(lambda t: PearsonCorrCoef(), _values, "pearsonr"),
    "spearman": MetricSpec(lambda t: SpearmanCorrCoef(), _values, "spearmanr"),
    # share of groups (MultiRC questions) whose examples (answer options) are all right (an invalid one is wrong)
    "question_exact_match": MetricSpec(
        lambda t: GroupExactMatch(), lambda s: (s.preds, s.target, s.groups), "exact_match"
    ),
    # free text (ReCoRD): SQuAD-normalised exact match and token F1, max over the gold answers, mean over queries
    "exact_match": MetricSpec(lambda t: MeanOverQueries(), lambda s: (s.exact_match,), "exact_match"),
    "token_f1": MetricSpec(lambda t: MeanOverQueries(), lambda s: (s.token_f1,), "f1"),
}


def build_metrics(task: Task) -> dict[str, Metric]:
    return {name: METRICS[name].make(task) for name in task.metrics}


def update_metrics(metrics: Mapping[str, Metric], scored: Scored) -> None:
    for name, metric in metrics.items():
        metric.update(*METRICS[name].inputs(scored))


__all__ = ["METRICS", "MetricSpec", "build_metrics", "update_metrics"]
