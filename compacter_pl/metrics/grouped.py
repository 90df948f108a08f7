"""Exact match per group (MultiRC: a question counts only if every one of its answer options is right)."""

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


class GroupExactMatch(Metric):
    """Share of groups whose examples are all predicted correctly. States are concatenated across devices,
    so the options of one question may be evaluated on different ranks."""

    full_state_update = False
    correct: list[torch.Tensor]
    groups: list[torch.Tensor]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("correct", default=[], dist_reduce_fx="cat")
        self.add_state("groups", default=[], dist_reduce_fx="cat")

    def update(self, preds: torch.Tensor, target: torch.Tensor, groups: torch.Tensor) -> None:
        self.correct.append((preds == target).long())
        self.groups.append(groups.long())

    def compute(self) -> torch.Tensor:
        # Before a sync the states are lists of batch tensors; after one, torchmetrics has concatenated them.
        if isinstance(self.correct, list) and not self.correct:
            return torch.tensor(0.0)
        correct, groups = dim_zero_cat(self.correct), dim_zero_cat(self.groups)
        if correct.numel() == 0:
            return torch.tensor(0.0, device=correct.device)
        unique, inverse = torch.unique(groups, return_inverse=True)
        errors = torch.zeros(len(unique), dtype=torch.long, device=correct.device)
        errors.scatter_add_(0, inverse, 1 - correct)
        return (errors == 0).float().mean()
