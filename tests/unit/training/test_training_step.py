"""One optimizer step of the LightningModule lowers the loss on a fixed batch."""

import torch

from compacter_pl.data.collate import TextToTextCollator
from compacter_pl.hub import load_tokenizer
from compacter_pl.training.module import TextToTextModule
from compacter_pl.training.steps import linear_warmup_then_decay
from tests.helpers import DEMO_MODEL


def test_one_step_lowers_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    module = TextToTextModule(str(DEMO_MODEL), task="rte", learning_rate=1e-2)
    module.model.eval()  # no dropout: the two losses are comparable
    tokenizer = load_tokenizer(str(DEMO_MODEL))
    rows = []
    for source, target in [("sentence1: a b. sentence2: a b.", "0"), ("sentence1: a b. sentence2: not b.", "1")]:
        rows.append(
            {
                "input_ids": tokenizer(source)["input_ids"],
                "labels": tokenizer(target)["input_ids"],
                "label": int(target),
                "group": -1,
                "answers": [],
                "id": 0,
            }
        )
    batch = TextToTextCollator(tokenizer.pad_token_id)(rows)
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    before = module(batch["input_ids"], batch["attention_mask"], batch["labels"])
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = module(batch["input_ids"], batch["attention_mask"], batch["labels"])
    assert after < before


def test_learning_rate_warms_up_then_decays_to_zero():
    factor = linear_warmup_then_decay(warmup_steps=10, total_steps=110)
    assert factor(0) == 0.1 and factor(9) == 1.0
    assert factor(60) == 0.5 and factor(110) == 0.0
