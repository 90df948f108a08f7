"""Dynamic padding: each batch is padded to its own longest sequence, never to a global maximum."""

from collections.abc import Sequence

import torch

IGNORE_INDEX = -100  # positions of the target that the loss skips


class TextToTextCollator:
    """Pads `input_ids` with the tokenizer's pad id and `labels` with -100; keeps the evaluation fields (and each
    example's record id, JSON text that `predict` writes)."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, rows: Sequence[dict]) -> dict:
        source_length = max(len(r["input_ids"]) for r in rows)
        target_length = max(len(r["labels"]) for r in rows)
        input_ids = torch.full((len(rows), source_length), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), source_length), dtype=torch.long)
        labels = torch.full((len(rows), target_length), IGNORE_INDEX, dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, : len(row["input_ids"])] = torch.tensor(row["input_ids"])
            attention_mask[i, : len(row["input_ids"])] = 1
            labels[i, : len(row["labels"])] = torch.tensor(row["labels"])
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
            "label": torch.tensor([r["label"] for r in rows]),
            "group": torch.tensor([r["group"] for r in rows]),
            "answers": [list(r["answers"]) for r in rows],
            "id": [r["id"] for r in rows],
        }
