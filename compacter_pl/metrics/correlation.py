"""Pearson and Spearman correlation (STS-B) as scipy computes them, over every example of every device.

torchmetrics' PearsonCorrCoef keeps float32 running moments merged batch by batch: constant predictions then
leave a rounding-noise variance and score an arbitrary correlation instead of NaN. These keep the values
(concatenated across devices, like `GroupExactMatch`) and compute in float64 at the end: NaN when either side
is constant or there are fewer than two examples (scipy's answer; the LightningModule counts it as 0).
"""

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks 1 .. n, tied values sharing the mean of their ranks (scipy.stats.rankdata's "average")."""
    ordered, order = torch.sort(values, stable=True)
    _, inverse, counts = torch.unique_consecutive(ordered, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    group_rank = ends - (counts.double() - 1) / 2
    ranks = torch.empty_like(values, dtype=torch.double)
    ranks[order] = group_rank[inverse]
    return ranks


def pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    x, y = x.double(), y.double()
    if len(x) < 2 or bool((x == x[0]).all()) or bool((y == y[0]).all()):
        return float("nan")
    x, y = x - x.mean(), y - y.mean()
    r = (x @ y) / torch.sqrt((x @ x) * (y @ y))
    return float(r.clamp(-1.0, 1.0))


class _Correlation(Metric):
    full_state_update = False
    preds: list[torch.Tensor]
    target: list[torch.Tensor]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("preds", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        if preds.shape != target.shape:
            raise ValueError(f"{preds.numel()} predictions for {target.numel()} gold values")
        self.preds.append(preds.detach().flatten().float())
        self.target.append(target.detach().flatten().float())

    def _values(self) -> tuple[torch.Tensor, torch.Tensor]:
        # Before a sync the states are lists of batch tensors; after one, torchmetrics has concatenated them.
        if isinstance(self.preds, list) and not self.preds:
            return torch.zeros(0, dtype=torch.double), torch.zeros(0, dtype=torch.double)
        return dim_zero_cat(self.preds).cpu().double(), dim_zero_cat(self.target).cpu().double()

    def _result(self, value: float) -> torch.Tensor:
        return torch.tensor(value, dtype=torch.float, device=self.device)


class PearsonCorrCoef(_Correlation):
    """scipy.stats.pearsonr of the predicted and gold values."""

    def compute(self) -> torch.Tensor:
        return self._result(pearson(*self._values()))


class SpearmanCorrCoef(_Correlation):
    """scipy.stats.spearmanr: the Pearson correlation of the average ranks."""

    def compute(self) -> torch.Tensor:
        preds, target = self._values()
        return self._result(pearson(average_ranks(preds), average_ranks(target)))
