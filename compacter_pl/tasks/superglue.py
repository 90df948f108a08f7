"""The SuperGLUE tasks of the paper, from the Hub dataset `aps/super_glue` (the paper's Section 5).

Source length 256 (ReCoRD 512). MultiRC and ReCoRD arrive flattened as the Hub stores them: one row per answer
option (MultiRC, grouped by question) and one row per query with all its gold answers (ReCoRD).
"""

import re
from operator import itemgetter

from compacter_pl.tasks.base import HubDataset, Task, plain_text
from compacter_pl.tasks.schema import TEXT_LIST, IntegerObject

SUPER_GLUE = HubDataset("aps/super_glue", "3de24cf8022e94f4ee4b9d55a6f539891524d646", "SuperGLUE")
BINARY = ("0", "1")
FALSE_TRUE = ("False", "True")

_SENTENCE_LABEL = re.compile(r"<b>\s*Sent\s*\d+\s*:\s*</b>", re.IGNORECASE)  # MultiRC: "<b>Sent 1: </b>"
_TAG = re.compile(r"<\s*/?\s*(b|br)\s*/?\s*>", re.IGNORECASE)  # what is left: <br>, <b>, </b>


def strip_markup(paragraph: str) -> str:
    """A MultiRC paragraph without its HTML: sentence labels dropped, line breaks become spaces."""
    return plain_text(_TAG.sub(" ", _SENTENCE_LABEL.sub(" ", paragraph)))


def passage_with_highlights(passage: str) -> str:
    """A ReCoRD passage with each `@highlight` line turned into a sentence of its own. (The Hub's parquet
    already writes highlights as "- " lines; those read well as they are and are only collapsed to one line.)"""
    body, *highlights = passage.split("@highlight")
    sentences = [plain_text(part) for part in [body, *highlights]]
    if not highlights:
        return sentences[0]
    return " ".join(s if s[-1] in ".!?\"'" else s + "." for s in sentences if s)


def entity_list(entities) -> str:
    """ReCoRD's candidate entities, each once, comma-separated."""
    return ", ".join(dict.fromkeys(plain_text(e) for e in entities))


def multirc_question(record: dict) -> int:
    """The question id (global in the Hub's schema): all answer options of a question form one group."""
    return int(record["idx"]["question"])


BOOLQ = Task(
    "boolq",
    SUPER_GLUE,
    "boolq",
    "BoolQ",
    ("question", "passage"),
    BINARY,
    ("accuracy",),
    small=True,
    source_length=256,
    label_names=FALSE_TRUE,
)
CB = Task(
    "cb",
    SUPER_GLUE,
    "cb",
    "CB",
    ("premise", "hypothesis"),
    ("0", "1", "2"),
    ("accuracy", "macro_f1"),
    small=True,
    source_length=256,
    label_names=("entailment", "contradiction", "neutral"),
)
# `question` is "cause" or "effect": without it the task is ill-posed.
COPA = Task(
    "copa",
    SUPER_GLUE,
    "copa",
    "COPA",
    ("premise", "choice1", "choice2", "question"),
    BINARY,
    ("accuracy",),
    small=True,
    source_length=256,
    label_names=("choice1", "choice2"),
)
MULTIRC = Task(
    "multirc",
    SUPER_GLUE,
    "multirc",
    "MultiRC",
    ("question", "answer", "paragraph"),
    BINARY,
    ("f1", "question_exact_match"),
    small=True,
    source_length=256,
    label_names=FALSE_TRUE,
    required_columns=("label", "idx"),
    field_formats={"paragraph": strip_markup},
    group_of=multirc_question,
    field_types={"idx": IntegerObject(("paragraph", "question", "answer"))},
)
RECORD = Task(
    "record",
    SUPER_GLUE,
    "record",
    "ReCoRD",
    ("query", "entities", "passage"),
    None,
    ("exact_match", "token_f1"),
    small=False,
    source_length=512,
    required_columns=("answers",),
    field_formats={"entities": entity_list, "passage": passage_with_highlights},
    answers_of=itemgetter("answers"),
    # a string here (a CSV's text of a list) would render and train on its characters
    field_types={"entities": TEXT_LIST, "answers": TEXT_LIST, "idx": IntegerObject(("passage", "query"))},
)
WIC = Task(
    "wic",
    SUPER_GLUE,
    "wic",
    "WiC",
    ("sentence1", "sentence2", "word"),
    BINARY,
    ("accuracy",),
    small=True,
    source_length=256,
    label_names=FALSE_TRUE,
)

TASKS = (BOOLQ, CB, COPA, MULTIRC, RECORD, WIC)
