"""A task is data: where its records live, how a record becomes text-to-text examples, how a generated text
is scored. The data module renders records with it; the LightningModule scores generations with it.

Most tasks need only the declarative fields (Hub config, input fields, targets, metrics, split rule). The few
special ones plug in small functions: `field_formats` (MultiRC markup, ReCoRD highlights and entities),
`target_of` (STS-B's 26 classes), `group_of` (MultiRC questions), `answers_of` (ReCoRD's free-text answers), and
declare the types of their fields that are not text or a class id (`field_types`, compacter_pl.tasks.schema).
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from compacter_pl.tasks.schema import INTEGER, TEXT, ClassId, FieldType


def plain_text(value: Any) -> str:
    """A field value as one line of text: white space (newlines included) collapsed to single spaces."""
    return " ".join(str(value).split())


Spans = tuple[tuple[int, int], ...]  # (start, end) character offsets of each field's value in a source


def render_fields_with_spans(
    record: dict, fields: Sequence[str], formats: dict[str, Callable[[Any], str]] | None = None
) -> tuple[str, Spans]:
    """`field: value` pairs joined by spaces, as in the paper (Section 5), and where each value lies in
    that text (`source[start:end]` is the value; the `field: ` prefixes and the joining spaces lie outside)."""
    formats = formats or {}
    parts, spans, position = [], [], 0
    for name in fields:
        value = record[name]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise ValueError(f"column {name!r} is empty")
        prefix, text = f"{name}: ", formats.get(name, plain_text)(value)
        start = position + len(prefix)
        spans.append((start, start + len(text)))
        parts.append(prefix + text)
        position = start + len(text) + 1  # the space joining the next pair
    return " ".join(parts), tuple(spans)


def index_target(record: dict) -> str:
    """The default target: the Hub's class id as a string ("0", "1", "2")."""
    value = record["label"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value != int(value):
        raise ValueError(f"label {value!r} is not a class id (the Hub's schema numbers the classes 0, 1, ...)")
    return str(int(value))


@dataclass(frozen=True)
class Example:
    """One text-to-text example. `label` indexes `Task.targets` (-1 for free-text targets); `group` ties
    examples scored together (a MultiRC question); `answers` are all gold strings (ReCoRD); `spans` are the
    character spans of the input fields' values in `source` (what `data.truncation fields` shortens)."""

    source: str
    target: str
    label: int = -1
    group: int = -1
    answers: tuple[str, ...] = ()
    spans: Spans = ()


@dataclass
class Scored:
    """Generated texts turned into the tensors the metrics read. An invalid generation (a text that is not one
    of the task's labels) is marked, not replaced: each metric's inputs (compacter_pl.metrics.METRICS) score it
    by the paper's authors' convention for that metric."""

    preds: torch.Tensor  # class index per example; len(task.targets) for an invalid generation
    target: torch.Tensor  # gold class index per example
    pred_values: torch.Tensor  # float value of the predicted target (STS-B score; else the class index); NaN if invalid
    target_values: torch.Tensor
    groups: torch.Tensor
    exact_match: torch.Tensor  # free text: max over gold answers (1.0 / 0.0); closed set: preds == target
    token_f1: torch.Tensor  # free text: max token F1 over gold answers; closed set: same as exact_match

    @property
    def valid(self) -> torch.Tensor:
        """bool: the generation is one of the task's labels (free text: always)."""
        return ~self.pred_values.isnan()


@dataclass(frozen=True)
class HubDataset:
    """A dataset on the Hugging Face Hub, pinned: every task of it loads this exact revision unless a run
    passes `data.revision`, so a dataset update upstream never changes a split silently."""

    path: str  # "nyu-mll/glue"
    revision: str  # a commit of the dataset's repository
    benchmark: str  # what the report averages over: "GLUE", "SuperGLUE"

    def __post_init__(self) -> None:
        if not self.revision:
            raise TypeError(f"dataset {self.path}: pin a revision (a commit of the dataset's Hub repository)")


@dataclass(frozen=True)
class Task:
    """One GLUE or SuperGLUE task as the paper casts it to text-to-text (its Section 5)."""

    name: str
    dataset: HubDataset  # where its records live on the Hub, pinned
    hub_config: str  # the Hub config ("rte", "stsb", ...); also the folder name under demo/data
    display_name: str  # as the paper's tables write it: "CoLA", "SST-2", "STS-B", "ReCoRD"
    input_fields: tuple[str, ...]  # rendered in this order as "field: value"
    targets: tuple[str, ...] | None  # the closed set of target strings (class i <-> targets[i]); None: free text
    metrics: tuple[str, ...]  # names in compacter_pl.metrics.METRICS
    small: bool  # fewer than 10k training examples: the validation set is halved into validation and test
    source_length: int = 128  # default max source tokens: 128 GLUE, 256 SuperGLUE, 512 ReCoRD
    label_names: tuple[str, ...] = ()  # the classes in the dataset's own terms, for predictions and errors
    test_split: str = "validation"  # the original split used as test (MNLI: validation_matched)
    ordinal: bool = False  # targets are numbers on a scale (STS-B): metrics read their values, not class ids
    required_columns: tuple[str, ...] = ("label",)  # columns read beyond input_fields
    field_formats: dict[str, Callable[[Any], str]] = field(default_factory=dict, hash=False)  # else plain_text
    target_of: Callable[[dict], str] = index_target  # closed set: the gold target string of a record
    group_of: Callable[[dict], int] | None = None  # records with one group stay in one half and score together
    answers_of: Callable[[dict], Sequence[str]] | None = None  # free text: all gold answers of a record
    # the Hub's types of fields that are not text (input fields) or a class id (a closed set's label), and of `idx`
    # where it is not an integer: what `schema` declares and every loader checks
    field_types: dict[str, FieldType] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if (self.targets is None) != (self.answers_of is not None):
            raise TypeError(f"task {self.name}: a free-text task (targets=None) needs answers_of, and only it")
        undeclared = [c for c in self.required_columns if c not in self._default_types() and c not in self.field_types]
        if undeclared:
            raise TypeError(f"task {self.name}: declare the type of column {undeclared[0]!r} in field_types")
        if self.ordinal and (self.targets is None or not all(_is_number(t) for t in self.targets)):
            raise TypeError(f"task {self.name}: ordinal targets must be numbers")

    @property
    def hub_path(self) -> str:
        return self.dataset.path

    @property
    def benchmark(self) -> str:
        return self.dataset.benchmark

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.input_fields + self.required_columns))

    @property
    def schema(self) -> dict[str, tuple[FieldType, bool]]:
        """Every field the task reads, with its type and whether a record must hold it: the input fields (text
        unless `field_types` says otherwise), the required columns (a closed set's label: one of its class ids),
        and `idx`, which a record may lack (the id `predict` writes; an integer unless `field_types` says
        otherwise)."""
        types = {**self._default_types(), **self.field_types}
        schema = {name: (types.get(name, TEXT), True) for name in self.columns}
        schema.setdefault("idx", (types["idx"], False))
        return schema

    def _default_types(self) -> dict[str, FieldType]:
        if self.targets is None:
            return {"idx": INTEGER}
        return {"idx": INTEGER, "label": ClassId(len(self.targets), f"{self.name} ({self.describe_classes()})")}

    def examples(self, record: dict, training: bool) -> list[Example]:
        """The text-to-text examples of one record: one, except ReCoRD's training records (one per answer).

        A record the task cannot use (a label outside its classes, no gold answer, an empty field) raises
        ValueError with a message that names the problem; the data module adds where the record is."""
        source, spans = self.rendered(record)
        group = int(self.group_of(record)) if self.group_of else -1
        if self.targets is None:
            assert self.answers_of is not None  # __post_init__: a free-text task has answers_of
            answers = tuple(dict.fromkeys(plain_text(a) for a in self.answers_of(record) if plain_text(a)))
            if not answers:
                raise ValueError("the record has no gold answer")
            if training:  # every gold answer is a correct output: train on each of them
                return [Example(source, answer, -1, group, (answer,), spans) for answer in answers]
            return [Example(source, answers[0], -1, group, answers, spans)]
        target = self.target_of(record)
        if target not in self.targets:
            raise ValueError(
                f"label {record.get('label')!r} is not one of the classes of {self.name} ({self.describe_classes()})"
            )
        return [Example(source, target, self.targets.index(target), group, spans=spans)]

    def source(self, record: dict) -> str:
        """The model input of a record; needs no label (what `predict` renders from raw inputs)."""
        return self.rendered(record)[0]

    @property
    def template(self) -> str:
        """What a record is rendered as (`sentence1: {sentence1} sentence2: {sentence2}`): the input fields in order,
        each value as plain text, or through the function `field_formats` names (`{paragraph|strip_markup}`).
        Tasks have no template versions: this text is what an export records of how its training inputs looked."""
        formats = {name: f"|{fmt.__name__}" for name, fmt in self.field_formats.items()}
        return " ".join(f"{name}: {{{name}{formats.get(name, '')}}}" for name in self.input_fields)

    def rendered(self, record: dict) -> tuple[str, Spans]:
        """The model input of a record and the character span of each input field's value in it."""
        return render_fields_with_spans(record, self.input_fields, self.field_formats)

    def prediction(self, text: str) -> str | float | None:
        """A generated text in the task's own terms: the class name (`entailment`), the STS-B score as a float,
        ReCoRD's answer text; None when it is not one of the task's labels."""
        if self.targets is None:
            return text.strip()
        index = self.decode(text)
        if index is None:
            return None
        if self.ordinal:
            return float(self.targets[index])
        return self.label_names[index] if self.label_names else self.targets[index]

    def describe_classes(self) -> str:
        """The classes for messages: `0 entailment, 1 not_entailment` or `0.0, 0.2, ..., 5.0`."""
        if self.targets is None:
            return "free text"
        if self.label_names:
            return ", ".join(f"{t} {n}" for t, n in zip(self.targets, self.label_names, strict=True))
        if len(self.targets) > 4:
            return f"{self.targets[0]}, {self.targets[1]}, ..., {self.targets[-1]}"
        return ", ".join(self.targets)

    def decode(self, text: str) -> int | None:
        """Class index of a generated text, or None if it is not a valid label."""
        text = text.strip()
        return self.targets.index(text) if self.targets and text in self.targets else None

    def score(
        self, texts: Sequence[str], labels: torch.Tensor, groups: torch.Tensor, answers: Sequence[Sequence[str]] = ()
    ) -> Scored:
        """Turn generated texts into metric inputs. `labels`, `groups`, `answers` come from the batch."""
        labels = labels.cpu()
        if self.targets is None:
            from compacter_pl.metrics.squad import best_exact_match, best_token_f1

            if len(answers) != len(texts):
                raise ValueError(
                    f"{self.name} scores free text against gold answers: got {len(texts)} texts "
                    f"and {len(answers)} answer lists"
                )
            em = torch.tensor([best_exact_match(t, a) for t, a in zip(texts, answers, strict=True)], dtype=torch.float)
            f1 = torch.tensor([best_token_f1(t, a) for t, a in zip(texts, answers, strict=True)], dtype=torch.float)
            return Scored(labels, labels, labels.float(), labels.float(), groups.cpu(), em, f1)
        invalid = len(self.targets)  # the marker: one past the last class
        preds = torch.tensor([invalid if d is None else d for d in map(self.decode, texts)], dtype=torch.long)
        values = torch.tensor(
            [float(t) if self.ordinal else float(i) for i, t in enumerate(self.targets)] + [float("nan")]
        )
        correct = (preds == labels).float()
        return Scored(preds, labels, values[preds], values[labels], groups.cpu(), correct, correct)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
