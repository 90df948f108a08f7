"""The GLUE tasks of the paper (WNLI left out), from the Hub dataset `nyu-mll/glue` (the paper's Section 5).

One definition per task: Hub config, input fields in template order, target strings, metrics, split rule.
Targets are the Hub's class ids as strings; `label_names` are the classes in the dataset's own terms.
"""

from compacter_pl.tasks.base import HubDataset, Task
from compacter_pl.tasks.schema import Score

GLUE = HubDataset("nyu-mll/glue", "bcdcba79d07bc864c1c254ccfcedcce55bcc9a8c", "GLUE")
BINARY = ("0", "1")
# STS-B: the score rounded to the nearest 0.2 and written with one decimal, "0.0", "0.2", ..., "5.0".
# (The paper says 21 classes, a miscount: this rounding gives 26, and the real records use all 26.)
STSB_TARGETS = tuple(f"{i / 5:.1f}" for i in range(26))


def stsb_target(record: dict) -> str:
    """`round(score * 5) / 5` with one decimal; a score outside [0, 5] is not one of the classes. Ties (the odd
    tenths: 0.1, 0.3, ...) go to the even fifth, as Python's, NumPy's and TensorFlow's round do."""
    score = record["label"]
    if isinstance(score, bool) or not isinstance(score, (int, float)) or score != score:
        raise ValueError(f"label {score!r} is not a similarity score (a number from 0 to 5)")
    return f"{round(score * 5) / 5:.1f}"


COLA = Task(
    "cola",
    GLUE,
    "cola",
    "CoLA",
    ("sentence",),
    BINARY,
    ("matthews",),
    small=True,
    label_names=("unacceptable", "acceptable"),
)
SST2 = Task(
    "sst2",
    GLUE,
    "sst2",
    "SST-2",
    ("sentence",),
    BINARY,
    ("accuracy",),
    small=False,
    label_names=("negative", "positive"),
)
MRPC = Task(
    "mrpc",
    GLUE,
    "mrpc",
    "MRPC",
    ("sentence1", "sentence2"),
    BINARY,
    ("accuracy", "f1"),
    small=True,
    label_names=("not_equivalent", "equivalent"),
)
QQP = Task(
    "qqp",
    GLUE,
    "qqp",
    "QQP",
    ("question1", "question2"),
    BINARY,
    ("accuracy", "f1"),
    small=False,
    label_names=("not_duplicate", "duplicate"),
)
STSB = Task(
    "stsb",
    GLUE,
    "stsb",
    "STS-B",
    ("sentence1", "sentence2"),
    STSB_TARGETS,
    ("pearson", "spearman"),
    small=True,
    ordinal=True,
    target_of=stsb_target,
    field_types={"label": Score(0, 5, "a similarity score")},  # the Hub's float score, 0 to 5
)
MNLI = Task(
    "mnli",
    GLUE,
    "mnli",
    "MNLI",
    ("premise", "hypothesis"),
    ("0", "1", "2"),
    ("accuracy",),
    small=False,
    label_names=("entailment", "neutral", "contradiction"),
    test_split="validation_matched",
)
QNLI = Task(
    "qnli",
    GLUE,
    "qnli",
    "QNLI",
    ("question", "sentence"),
    BINARY,
    ("accuracy",),
    small=False,
    label_names=("entailment", "not_entailment"),
)
RTE = Task(
    "rte",
    GLUE,
    "rte",
    "RTE",
    ("sentence1", "sentence2"),
    BINARY,
    ("accuracy",),
    small=True,
    label_names=("entailment", "not_entailment"),
)

TASKS = (COLA, SST2, MRPC, QQP, STSB, MNLI, QNLI, RTE)
