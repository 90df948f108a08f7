"""Metrics computed from a confusion matrix (CoLA Matthews correlation, CB macro-F1), as sklearn computes them.

The state is the matrix of counts, summed across devices, so a distributed run gives exactly the numbers of one
device. Rows are the gold classes 0 .. n-1; columns the predicted ones plus a last column, n, for a generation
that is not one of the task's labels (`Scored.preds == len(task.targets)`).
"""

import torch
from torchmetrics import Metric


class ConfusionMatrixMetric(Metric):
    """Counts of (gold class, predicted class or invalid) pairs; subclasses compute a score from them."""

    full_state_update = False
    confusion: torch.Tensor

    def __init__(self, num_classes: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.add_state(
            "confusion", default=torch.zeros(num_classes, num_classes + 1, dtype=torch.long), dist_reduce_fx="sum"
        )

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        n = self.num_classes
        preds, target = preds.long().flatten(), target.long().flatten()
        if preds.shape != target.shape:
            raise ValueError(f"{len(preds)} predictions for {len(target)} gold labels")
        if len(target) and (target.min() < 0 or target.max() >= n or preds.min() < 0 or preds.max() > n):
            raise ValueError(
                f"gold labels must be in 0..{n - 1} and predictions in 0..{n} ({n}: invalid); got "
                f"gold {target.unique().tolist()}, predicted {preds.unique().tolist()}"
            )
        counts = torch.bincount(target * (n + 1) + preds, minlength=n * (n + 1))
        self.confusion += counts.reshape(n, n + 1)

    def counts(self) -> torch.Tensor:
        """The matrix in float64 on the CPU: products of counts overflow int64 beyond ~10^5 examples."""
        return self.confusion.detach().cpu().double()


class MatthewsCorrCoef(ConfusionMatrixMetric):
    """sklearn's multiclass Matthews correlation over the gold and predicted labels, an invalid generation
    being a class of its own (what `sklearn.metrics.matthews_corrcoef` gives on the generated strings). With two
    classes and no invalid generation it is the binary MCC. 0 when the predictions or the gold labels are all
    one class (the correlation is undefined there; sklearn returns 0)."""

    def compute(self) -> torch.Tensor:
        c = self.counts()
        gold, predicted = c.sum(dim=1), c.sum(dim=0)  # per class; `predicted` has the invalid column too
        samples, correct = c.sum(), c.diagonal().sum()
        cov_gold_pred = correct * samples - gold @ predicted[:-1]  # nothing is gold-invalid
        cov_pred = samples**2 - predicted @ predicted
        cov_gold = samples**2 - gold @ gold
        if cov_pred * cov_gold == 0:
            mcc = 0.0
        else:
            mcc = float(cov_gold_pred / torch.sqrt(cov_gold * cov_pred))
        return torch.tensor(mcc, dtype=torch.float, device=self.confusion.device)


class MacroF1(ConfusionMatrixMetric):
    """The unweighted mean of the F1 of every class 0 .. n-1, present in the data or not (sklearn's
    `f1_score(labels=range(n), average="macro")`; a class never gold nor predicted has F1 0). An invalid
    generation misses its gold class (a false negative) and is a false positive of no class."""

    def compute(self) -> torch.Tensor:
        c = self.counts()
        tp = c.diagonal()
        fp = c[:, :-1].sum(dim=0) - tp  # predicted as the class, gold another one
        fn = c.sum(dim=1) - tp  # gold the class, predicted another one or invalid
        denominator = 2 * tp + fp + fn
        f1 = torch.where(denominator > 0, 2 * tp / denominator.clamp(min=1), torch.zeros_like(tp))
        return f1.mean().float().to(self.confusion.device)
