"""Builds the offline demo: RTE-schema data, a tokenizer trained on the project's own text, a tiny T5.

Run from the repository root: `python demo/make_demo.py`. The outputs are committed so the demo and the
tests need no network; re-running reproduces them (fixed seeds; tokenizer scores up to float rounding). The
demo data is learnable on purpose:
the label follows from the text (a hypothesis that negates the premise is `not_entailment`), so a tiny
model trained from scratch for a minute shows real learning.
"""

import json
import os
import random
import string
from pathlib import Path

DEMO = Path(__file__).resolve().parent
DATA_DIR = DEMO / "data" / "rte"
MODEL_DIR = DEMO / "tiny-t5"
SEED = 1234

SUBJECTS = [
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


def make_record(rng: random.Random, idx: int) -> dict:
    subject, (past, base), obj, place = (
        rng.choice(SUBJECTS),
        rng.choice(VERBS),
        rng.choice(OBJECTS),
        rng.choice(PLACES),
    )
    premise = f"{subject} {past} {obj} {place}."
    label = rng.randint(0, 1)  # 0 entailment, 1 not_entailment, as in nyu-mll/glue rte
    hypothesis = f"{subject} did not {base} {obj}." if label else f"{subject} {past} {obj}."
    return {"sentence1": premise, "sentence2": hypothesis, "label": label, "idx": idx}


def write_data(rng: random.Random) -> list[str]:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    texts = []
    for split, size in (("train", 600), ("validation", 200)):
        records = [make_record(rng, i) for i in range(size)]
        with open(DATA_DIR / f"{split}.jsonl", "w") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
        texts += [f"sentence1: {r['sentence1']} sentence2: {r['sentence2']}" for r in records]
    return texts


def template_text() -> list[str]:
    """The field names, label words and numbers that the task templates use, so every task tokenizes sensibly."""
    lines = []
    fields = (
        "sentence sentence1 sentence2 question question1 question2 premise hypothesis passage choice1 "
        "choice2 word answer paragraph query entities cause effect entailment not_entailment neutral "
        "contradiction True False"
    )
    lines += [f"{w}:" for w in fields.split()] + [f"{i / 5:.1f} {i}" for i in range(26)]
    return lines


def train_tokenizer(corpus: list[str]):
    os.environ["RAYON_NUM_THREADS"] = (
        "1"  # single-threaded: the same vocabulary every run (scores equal up to float rounding)
    )
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    # T5's layout: pad 0 (also the decoder start), eos 1, unk 2.
    trainer = trainers.UnigramTrainer(
        vocab_size=1000,
        special_tokens=["<pad>", "</s>", "<unk>"],
        unk_token="<unk>",
        initial_alphabet=list(string.printable.strip()),
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=512
    )


def make_model(vocab_size: int):
    import torch
    from transformers import GenerationConfig, T5Config, T5ForConditionalGeneration

    torch.manual_seed(SEED)
    config = T5Config(
        vocab_size=vocab_size,
        d_model=64,
        d_ff=128,
        d_kv=16,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        dropout_rate=0.0,
        feed_forward_proj="relu",
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        tie_word_embeddings=True,
    )
    model = T5ForConditionalGeneration(config)
    model.generation_config = GenerationConfig(decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    return model


def main() -> None:
    rng = random.Random(SEED)
    corpus = write_data(rng) + template_text()
    tokenizer = train_tokenizer(corpus)
    model = make_model(len(tokenizer))
    model.save_pretrained(MODEL_DIR)
    tokenizer.save_pretrained(MODEL_DIR)
    print(
        f"wrote {DATA_DIR} and {MODEL_DIR} ({sum(p.numel() for p in model.parameters()):,} parameters, "
        f"vocabulary {len(tokenizer)})"
    )


if __name__ == "__main__":
    main()
