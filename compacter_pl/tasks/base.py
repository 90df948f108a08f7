"""A task is data: where its records live, how a record becomes text-to-text examples, how a generated text
is scored. The data module renders records with it; the LightningModule scores generations with it.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch


def render_fields(record: dict, fields: Sequence[str]) -> str:
    """`field: value` pairs joined by spaces, as in the paper (SPEC section 3)."""
    return " ".join(f"{name}: {record[name]}" for name in fields)


def index_target(record: dict) -> str:
    """The default target: the Hub's class id as a string ("0", "1", "2")."""
    return str(int(record["label"]))


@dataclass(frozen=True)
class Example:
    """One text-to-text example. `label` indexes `Task.targets` (-1 for free-text targets); `group` ties
    examples scored together (a MultiRC question); `answers` are all gold strings (ReCoRD)."""

    source: str
    target: str
    label: int = -1
    group: int = -1
    answers: tuple[str, ...] = ()


@dataclass
class Scored:
    """Generated texts turned into the tensors the metrics read. An invalid generation gets a wrong label."""

    preds: torch.Tensor  # class index per example
    target: torch.Tensor  # gold class index per example
    pred_values: torch.Tensor  # float value of the predicted target (STS-B score; else the class index)
    target_values: torch.Tensor
    groups: torch.Tensor
    exact_match: torch.Tensor  # free text: max over gold answers (1.0 / 0.0); closed set: preds == target
    token_f1: torch.Tensor  # free text: max token F1 over gold answers; closed set: same as exact_match


@dataclass(frozen=True)
class Task:
    """One GLUE or SuperGLUE task as the paper casts it to text-to-text (SPEC section 3)."""

    name: str
    hub_path: str  # "nyu-mll/glue" or "aps/super_glue"
    hub_config: str  # the Hub config ("rte", "stsb", ...); also the folder name under a local data_dir
    input_fields: tuple[str, ...]  # rendered in this order as "field: value"
    targets: tuple[str, ...] | None  # the closed set of target strings (class i <-> targets[i]); None: free text
    metrics: tuple[str, ...]  # names in compacter_pl.metrics.METRICS
    small: bool  # fewer than 10k training examples: the validation set is halved into validation and test
    source_length: int = 128
    label_names: tuple[str, ...] = ()  # the classes in the dataset's own terms, for predictions
    test_split: str = "validation"  # the original split used as test for the large tasks
    group_of: Callable[[dict], int] | None = None  # records with one group stay in one half of a split
    target_of: Callable[[dict], str] = index_target
    expand: Callable[[dict, bool], list[Example]] | None = None  # custom rendering; bool: training split
    required_columns: tuple[str, ...] = field(default=())  # columns beyond input_fields and "label"

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.input_fields + ("label",) + self.required_columns))

    @property
    def ordinal(self) -> bool:
        """Targets that are numbers (STS-B): a wrong guess is the farthest class, not the next one."""
        return self.targets is not None and all(_is_number(t) for t in self.targets)

    def examples(self, record: dict, training: bool) -> list[Example]:
        """The text-to-text examples of one record (one, except for ReCoRD's training answers)."""
        if self.expand is not None:
            return self.expand(record, training)
        target = self.target_of(record)
        group = self.group_of(record) if self.group_of else -1
        return [Example(render_fields(record, self.input_fields), target, self.label_of_target(target), group)]

    def label_of_target(self, target: str) -> int:
        if self.targets is None:
            return -1
        try:
            return self.targets.index(target)
        except ValueError:
            raise ValueError(f"target {target!r} is not one of the task's classes {list(self.targets)}") from None

    def decode(self, text: str) -> int | None:
        """Class index of a generated text, or None if it is not a valid label."""
        text = text.strip()
        return self.targets.index(text) if self.targets and text in self.targets else None

    def wrong_label(self, gold: int) -> int:
        """The label an invalid generation counts as: never the gold one."""
        n = len(self.targets)
        if self.ordinal:
            return 0 if gold >= n / 2 else n - 1
        return (gold + 1) % n

    def score(self, texts: Sequence[str], labels: torch.Tensor, groups: torch.Tensor,
              answers: Sequence[Sequence[str]] = ()) -> Scored:
        """Turn generated texts into metric inputs. `labels`, `groups` come from the batch."""
        labels = labels.cpu()
        if self.targets is None:
            from compacter_pl.metrics.squad import best_exact_match, best_token_f1

            em = torch.tensor([best_exact_match(t, a) for t, a in zip(texts, answers)], dtype=torch.float)
            f1 = torch.tensor([best_token_f1(t, a) for t, a in zip(texts, answers)], dtype=torch.float)
            return Scored(labels, labels, labels.float(), labels.float(), groups.cpu(), em, f1)
        decoded = [self.decode(t) for t in texts]
        preds = torch.tensor([self.wrong_label(int(g)) if d is None else d for d, g in zip(decoded, labels)])
        values = torch.tensor([float(t) if self.ordinal else float(i) for i, t in enumerate(self.targets)])
        correct = (preds == labels).float()
        return Scored(preds, labels, values[preds], values[labels], groups.cpu(), correct, correct)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
