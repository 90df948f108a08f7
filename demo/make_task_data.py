"""Writes small synthetic data for every task of the paper, in the schema of the Hub datasets, so the tiny demo
model (demo/tiny-t5) can run any task offline: `demo/data/<hub_config>/train.jsonl` and `validation.jsonl`
(MNLI: `validation_matched.jsonl`). RTE's demo data comes from demo/make_demo.py and is left alone.

Run from the repository root: `python demo/make_task_data.py` (fixed seed: re-running rewrites the same bytes).
Then, e.g.:
    python cli.py fit --config configs/demo.yaml --data.task cb --data.data_dir demo/data/cb
The large tasks (sst2, qqp, mnli, qnli, record) hold out 1,000 training records as validation in the paper;
configs/demo.yaml holds out 64 of these files' records instead (`data.validation_size`).

The records are made up but keep the Hub's column names, label ids and quirks (MultiRC's HTML markup and
nested idx, ReCoRD's @highlight lines, @placeholder queries and several gold answers, STS-B's float scores).
Each label follows from a phrase of the text (STS-B's score from which of three kinds of second sentence it
is), and each task has enough records that the demo config's 6 epochs of batch 32 outlast its 20 warm-up steps:
the tiny model, trained from scratch, beats every constant prediction on every task
(tests/e2e/test_demo_tasks.py).
"""

import argparse
import json
import random
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
SEED = 4321
# Records per split: 10 training steps an epoch (60 in the demo's 6 epochs) after the large tasks' hold-out.
SMALL = {"train": 320, "validation": 80}  # halved into validation and test
LARGE = {"train": 384, "validation": 64}  # 64 training records held out as validation; the validation file tests
MULTIRC = {"train": 160, "validation": 40}  # questions, of two answer options (rows) each

PEOPLE = [
    "The cat",
    "A farmer",
    "The committee",
    "My neighbour",
    "The senator",
    "A young girl",
    "The company",
    "The old man",
    "A doctor",
    "The team",
    "Her brother",
    "The teacher",
]
NAMES = ["Anna Berg", "Carlos Diaz", "Mia Chen", "Omar Haddad", "Lena Novak", "Tom Okafor", "Sara Lind", "Ivan Petrov"]
CLUBS = ["Chelsea", "Arsenal", "Porto", "Ajax", "Celtic", "Lyon"]
VERBS = [
    ("bought", "buy"),
    ("painted", "paint"),
    ("sold", "sell"),
    ("visited", "visit"),
    ("found", "find"),
    ("cleaned", "clean"),
    ("built", "build"),
    ("watched", "watch"),
]
OBJECTS = [
    "a red house",
    "the small boat",
    "an old car",
    "the new bridge",
    "a garden",
    "the museum",
    "a bicycle",
    "the river",
    "a large painting",
    "the station",
]
PLACES = ["in Paris", "last summer", "on Monday", "near the coast", "after the storm", "in 1998"]
GOOD = ["wonderful", "moving", "funny", "brilliant", "charming"]
BAD = ["boring", "dull", "awful", "clumsy", "tedious"]
WEATHER = ["It rained all day.", "The sun was hot.", "Snow fell at night.", "The wind was strong."]
NOT_SAID = ["nothing", "nothing at all", "nothing much", "nothing new"]  # MultiRC's wrong answer options
WORDS = [
    ("bank", "river bank", "savings bank"),
    ("bar", "iron bar", "wine bar"),
    ("ring", "gold ring", "boxing ring"),
    ("play", "school play", "fair play"),
    ("match", "tennis match", "lit match"),
]  # word, sense 1, sense 2


def sentence(rng: random.Random) -> tuple[str, str, str, str, str]:
    subject, (past, base), obj, place = rng.choice(PEOPLE), rng.choice(VERBS), rng.choice(OBJECTS), rng.choice(PLACES)
    return f"{subject} {past} {obj} {place}.", subject, past, base, obj


def cola(rng, i):
    text, subject, past, base, obj = sentence(rng)
    label = rng.randint(0, 1)  # 0 unacceptable: "did" before a past form
    if label == 0:
        text = text.replace(f" {past} ", f" did {past} ", 1)
    return {"sentence": text, "label": label, "idx": i}


def sst2(rng, i):
    label = rng.randint(0, 1)
    word, verdict = (rng.choice(GOOD), "i liked it") if label else (rng.choice(BAD), "i did not like it")
    return {"sentence": f"the film {rng.choice(PLACES)} was {word} , {verdict} . ", "label": label, "idx": i}


def mrpc(rng, i):
    text, subject, past, base, obj = sentence(rng)
    label = rng.randint(0, 1)  # 1 equivalent
    other = f"{obj.capitalize()} was {past} by {subject.lower()}." if label else sentence(rng)[0]
    return {"sentence1": text, "sentence2": other, "label": label, "idx": i}


def qqp(rng, i):
    _, subject, _, base, obj = sentence(rng)
    label = rng.randint(0, 1)  # 1 duplicate: the same question in other words; 0: another question
    other = f"What made {subject.lower()} {base} {obj}?" if label else f"How much did {subject.lower()} pay for {obj}?"
    return {
        "question1": f"Why did {subject.lower()} {base} {obj}?",
        "question2": other,
        "label": label,
        "idx": i,
    }


def stsb(rng, i):
    text, subject, past, base, obj = sentence(rng)
    score = round(rng.uniform(0, 5), rng.choice([1, 2, 3]))  # the Hub's scores: floats such as 3.8, 4.75, 0.636
    # the same sentence, the same without its time or place, or a sentence about something else
    other = text if score > 3.4 else f"{subject} {past} {obj}." if score > 1.6 else rng.choice(WEATHER)
    return {"sentence1": text, "sentence2": other, "label": score, "idx": i}


def nli(rng, i, labels=("entailment", "neutral", "contradiction")):
    text, subject, past, base, obj = sentence(rng)
    kind = rng.choice(labels)
    hypothesis = {
        "entailment": f"{subject} {past} {obj}.",
        "neutral": f"{subject} {past} {obj} twice.",
        "contradiction": f"{subject} did not {base} {obj}.",
        "not_entailment": f"{subject} did not {base} {obj}.",
    }[kind]
    return {"premise": text, "hypothesis": hypothesis, "label": labels.index(kind), "idx": i}


def mnli(rng, i):
    return nli(rng, i)  # nyu-mll/glue mnli: 0 entailment, 1 neutral, 2 contradiction


def cb(rng, i):
    return nli(rng, i, ("entailment", "contradiction", "neutral"))  # aps/super_glue cb: 0, 1, 2 in this order


def qnli(rng, i):
    text, subject, past, base, obj = sentence(rng)
    label = rng.randint(0, 1)  # 0 entailment: the sentence answers the question
    answer = text if label == 0 else f"{subject} did not {base} anything {rng.choice(PLACES)}."
    return {"question": f"What did {subject.lower()} {base}?", "sentence": answer, "label": label, "idx": i}


def boolq(rng, i):
    text, subject, past, base, obj = sentence(rng)
    label = rng.randint(0, 1)  # 1 True: the passage says so; False: it says the opposite
    told = text if label else f"{subject} did not {base} {obj} {rng.choice(PLACES)}."
    return {
        "question": f"did {subject.lower()} {base} {obj}",
        "passage": f"{obj.capitalize()} -- {told}",
        "idx": i,
        "label": label,
    }


def copa(rng, i):
    _, subject, past, _, obj = sentence(rng)
    label = rng.randint(0, 1)  # the cause of buying it: wanting it (choice1); its effect: owning it (choice2)
    return {
        "premise": f"{subject} {past} {obj}.",
        "choice1": f"{subject} wanted {obj}.",
        "choice2": f"{subject} owned {obj}.",
        "question": ("cause", "effect")[label],
        "idx": i,
        "label": label,
    }


def wic(rng, i):
    word, first, second = rng.choice(WORDS)
    label = rng.randint(0, 1)  # 1 True: the same sense
    s1 = f"She saw the {first} {rng.choice(PLACES)}."
    s2 = f"He liked the {first} too." if label else f"He liked the {second} instead."
    start1, start2 = s1.index(word), s2.index(word)
    return {
        "word": word,
        "sentence1": s1,
        "sentence2": s2,
        "start1": start1,
        "start2": start2,
        "end1": start1 + len(word),
        "end2": start2 + len(word),
        "idx": i,
        "label": label,
    }


def multirc(rng, questions):
    """Paragraphs with 2 questions and 2 answer options each, flattened as the Hub stores them: one row per
    answer option, idx.question numbering the questions of the split."""
    rows = []
    for p in range(questions // 2):
        facts = [sentence(rng) for _ in range(2)]
        paragraph = "".join(f"<b>Sent {k + 1}: </b>{text}<br>" for k, (text, *_) in enumerate(facts))
        for q in (2 * p, 2 * p + 1):
            _, subject, _, base, obj = facts[q - 2 * p]
            options = rng.sample([obj, rng.choice(NOT_SAID)], 2)  # the paragraph's answer and a wrong one
            for option in options:
                rows.append(
                    {
                        "paragraph": paragraph,
                        "question": f"What did {subject.lower()} {base}?",
                        "answer": option,
                        "idx": {"paragraph": p, "question": q, "answer": len(rows)},
                        "label": int(option not in NOT_SAID),
                    }
                )
    return rows


def record_query(rng, i):
    """One ReCoRD query: a passage with @highlight lines, a query with @placeholder, one or two gold answers
    (a full name and its surname, as in the real data)."""
    scorer, keeper = rng.sample(NAMES, 2)
    home, away = rng.sample(CLUBS, 2)
    passage = f"{home} beat {away}. {scorer} scored, {keeper} saved a penalty.\n@highlight\n{scorer} scored the winner"
    entities = [scorer, scorer.split()[1], keeper, home, away]
    spans = {"text": [], "start": [], "end": []}
    for entity in entities:
        start = passage.index(entity)
        spans["text"].append(entity)
        spans["start"].append(start)
        spans["end"].append(start + len(entity) - 1)  # the Hub's ends are inclusive
    return {
        "passage": passage,
        "query": "The winner was scored by @placeholder.",
        "entities": sorted(set(entities)),
        "entity_spans": spans,
        "answers": [scorer, scorer.split()[1]],
        "idx": {"passage": i, "query": i},
    }


SIMPLE = {
    "cola": cola,
    "sst2": sst2,
    "mrpc": mrpc,
    "qqp": qqp,
    "stsb": stsb,
    "mnli": mnli,
    "qnli": qnli,
    "boolq": boolq,
    "cb": cb,
    "copa": copa,
    "wic": wic,
}
LARGE_TASKS = {"sst2", "qqp", "mnli", "qnli", "record"}
TEST_SPLIT = {"mnli": "validation_matched"}


def records(config: str, split: str, rng: random.Random) -> list[dict]:
    size = (LARGE if config in LARGE_TASKS else MULTIRC if config == "multirc" else SMALL)[split]
    if config == "multirc":  # size counts questions here; rows are answer options
        return multirc(rng, size)
    if config == "record":
        return [record_query(rng, i) for i in range(size)]
    return [SIMPLE[config](rng, i) for i in range(size)]


def write(out: Path) -> list[Path]:
    written = []
    for config in [*SIMPLE, "multirc", "record"]:
        rng = random.Random(f"{SEED}-{config}")
        for split in ("train", "validation"):
            path = out / config / f"{TEST_SPLIT.get(config, split) if split == 'validation' else split}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r) + "\n" for r in records(config, split, rng)))
            written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA, help="the folder that gets one folder per Hub config")
    args = parser.parse_args()
    written = write(args.out)
    print(f"wrote {len(written)} files under {args.out}")


if __name__ == "__main__":
    main()
