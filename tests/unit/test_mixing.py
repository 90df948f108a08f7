"""Mixed batches: rows of many adapters in one batch give each row exactly what its adapter gives it alone."""

import json

import pytest
import torch

from compacter_pl.adapter_bank import AdapterBank
from compacter_pl.errors import UserError
from compacter_pl.hub import load_t5, load_tokenizer
from compacter_pl.methods import Compacter
from tests.helpers import DEMO_DATA, DEMO_MODEL, KEYS, random_export

NOT_MIXABLE = {"full": "every weight of the model is the task's own", "intrinsic_said": "every weight of the model"}
MIXABLE = [key for key in [*KEYS, "ln_only"] if key not in NOT_MIXABLE]
# Companions of every method under test in its batches: other kinds of parts in the same rows.
COMPANIONS = {"cola": ("compacter", 3), "stsb": ("prompt_random", 4), "wic": ("bitfit", 5)}


def records(task: str, count: int = 3) -> list[dict]:
    lines = (DEMO_DATA / task / "validation.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines[:count]]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(str(DEMO_MODEL))


def bank_of(tokenizer, adapters: dict[str, tuple[str, str, int]]) -> AdapterBank:
    """A bank of adapters name -> (method key, task, seed), on a base model of its own."""
    bank = AdapterBank(load_t5(str(DEMO_MODEL)), tokenizer, max_new_tokens=5)
    for name, (key, task, seed) in adapters.items():
        bank.add(name, random_export(key, task, seed))
    return bank


def interleaved_rows(bank: AdapterBank, count: int = 3) -> tuple[list[str], list[dict]]:
    """`count` rows of every adapter, the adapters taking turns (rows of one adapter are never adjacent)."""
    of = {name: records(bank.exports[name].task, count) for name in bank.names}
    rows = [name for _ in range(count) for name in bank.names]
    inputs = [of[name][i] for i in range(count) for name in bank.names]
    return rows, inputs


def alone(bank: AdapterBank, rows, inputs, **kwargs) -> list:
    """Each row through its own adapter's model, by itself (no other row, no padding)."""
    call = bank.predict if kwargs else bank.generate
    return [call(name, [record], **kwargs)[0] for name, record in zip(rows, inputs, strict=True)]


def teacher_forced_logits(bank: AdapterBank, rows, inputs) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The mixed model's logits for the batch, and each row's logits from its adapter's own model alone."""
    sources = [bank.source(name, record) for name, record in zip(rows, inputs, strict=True)]
    decoder_input_ids = torch.tensor([[0, 7, 3, 11]])
    tokens = bank.tokenizer(sources, return_tensors="pt", padding=True)
    mixed = bank._mixed_model()
    with torch.inference_mode(), mixed.route(rows, torch.device("cpu")):
        batch = mixed.model(**tokens, decoder_input_ids=decoder_input_ids.expand(len(rows), -1)).logits
    single = []
    with torch.inference_mode():
        for name, source in zip(rows, sources, strict=True):
            own = bank.tokenizer([source], return_tensors="pt")
            single.append(bank.models[name](**own, decoder_input_ids=decoder_input_ids).logits[0])
    return batch, single


@pytest.mark.parametrize(
    ("key", "init_args"),
    [
        *[(key, {}) for key in MIXABLE],
        ("compacter", {"train_output_layer": True}),  # an output layer of its own (the paper's Appendix C)
        ("bitfit", {"train_output_layer": True}),
    ],
    ids=[*MIXABLE, "compacter-output-layer", "bitfit-output-layer"],
)
def test_every_row_of_a_mixed_batch_gets_what_its_adapter_gives_it_alone(tokenizer, key, init_args):
    """Two adapters of the method (other weights, other tasks and label sets) beside adapters of other kinds, rows
    of different lengths taking turns: logits to float tolerance, generated tokens and ranked labels equal."""
    bank = AdapterBank(load_t5(str(DEMO_MODEL)), tokenizer, max_new_tokens=5)
    bank.add("a", random_export(key, "rte", 1, **init_args))
    bank.add("b", random_export(key, "cb", 2, **init_args))
    for task, (companion, seed) in COMPANIONS.items():
        bank.add(f"{companion}@{task}", random_export(companion, task, seed))
    assert bank.not_mixed() == {}
    rows, inputs = interleaved_rows(bank)
    lengths = {len(bank.tokenizer(bank.source(n, r))["input_ids"]) for n, r in zip(rows, inputs, strict=True)}
    assert len(lengths) > 3

    batch, single = teacher_forced_logits(bank, rows, inputs)
    for i, logits in enumerate(single):
        torch.testing.assert_close(batch[i], logits, rtol=1e-4, atol=1e-4, msg=f"row {i} ({rows[i]})")
    # the adapters matter: a row's logits differ from the same row's under another adapter of the same method
    as_b = teacher_forced_logits(bank, ["b"], [bank.source(rows[0], inputs[0])])[1][0]
    assert not torch.allclose(single[0], as_b, atol=1e-3)

    assert bank.generate(rows, inputs) == alone(bank, rows, inputs)
    ranked = bank.predict(rows, inputs, eval_mode="rank")
    assert ranked == alone(bank, rows, inputs, eval_mode="rank")
    assert all(label is not None for label in ranked)  # ranking always names one of the row's own labels
    assert bank.predict(rows, inputs) == alone(bank, rows, inputs, eval_mode="generate")


def test_a_batch_of_every_method_and_of_methods_that_cannot_mix(tokenizer):
    """All methods in one call: the mixable ones in one batch, full fine-tuning and Intrinsic-SAID each in a batch
    of its own, free-text ReCoRD generating beside ranked rows; every row as alone."""
    tasks = ["rte", "cb", "cola", "stsb", "wic", "boolq", "mrpc", "record"]
    keys = [*MIXABLE, *NOT_MIXABLE]
    bank = bank_of(tokenizer, {key: (key, tasks[i % len(tasks)], i) for i, key in enumerate(keys)})
    reasons = bank.not_mixed()
    assert set(reasons) == set(NOT_MIXABLE)
    for key, why in NOT_MIXABLE.items():
        assert why in reasons[key]
    rows, inputs = interleaved_rows(bank, count=2)
    assert bank.generate(rows, inputs) == alone(bank, rows, inputs)
    assert bank.predict(rows, inputs, eval_mode="rank") == alone(bank, rows, inputs, eval_mode="rank")


def test_mixing_never_writes_the_base_and_keeps_its_flags(tokenizer):
    base = load_t5(str(DEMO_MODEL))
    base.lm_head.weight.requires_grad_(False)
    before = {name: value.clone() for name, value in base.state_dict().items()}
    flags = {name: p.requires_grad for name, p in base.named_parameters()}
    bank = AdapterBank(base, tokenizer)
    for i, key in enumerate(MIXABLE):
        bank.add(key, random_export(key, "rte", i))
    rows, inputs = interleaved_rows(bank, count=1)
    bank.generate(rows, inputs)
    assert all(torch.equal(before[name], value) for name, value in base.state_dict().items())
    assert {name: p.requires_grad for name, p in base.named_parameters()} == flags


def test_a_mix_that_misses_a_trained_parameter_runs_its_adapter_alone(tokenizer, monkeypatch):
    """The guarantee: an adapter joins mixed batches only if its method's mix declared every parameter its export
    trained; otherwise its rows run through its own model (correct, only not mixed)."""

    def mix_without_layer_norms(self, model, parts):
        self.train_layer_norms = False
        try:
            type(self).__mro__[1].mix(self, model, parts)
        finally:
            self.train_layer_norms = True

    monkeypatch.setattr(Compacter, "mix", mix_without_layer_norms)
    bank = bank_of(tokenizer, {"c": ("compacter", "rte", 1), "p": ("prompt_random", "cb", 2)})
    assert "leaves out the trained parameter" in bank.not_mixed()["c"]
    assert "layer_norm" in bank.not_mixed()["c"]
    rows, inputs = interleaved_rows(bank)
    assert bank.generate(rows, inputs) == alone(bank, rows, inputs)


def test_adding_an_adapter_rebuilds_the_mixed_model(tokenizer):
    bank = bank_of(tokenizer, {"a": ("adapter", "rte", 1), "b": ("lora", "cb", 2)})
    rows, inputs = interleaved_rows(bank)
    bank.generate(rows, inputs)
    bank.add("c", random_export("compacter++", "cola", 3))
    bank.add("a", random_export("adapter", "rte", 9))  # replaced: its rows follow the new weights
    rows, inputs = interleaved_rows(bank)
    assert bank.generate(rows, inputs) == alone(bank, rows, inputs)


def test_mixed_calls_refuse_bad_rows_in_one_line(tokenizer):
    bank = bank_of(tokenizer, {"rte": ("compacter", "rte", 1), "cb": ("lora", "cb", 2)})
    rte, cb = records("rte", 1)[0], records("cb", 1)[0]
    cases = {
        "2 adapter names for 1 inputs": (["rte", "cb"], [rte]),
        "no adapter named 'cola' in this AdapterBank; it has: rte, cb": (["rte", "cola"], [rte, rte]),
        "adapter 'cb': input 1 lacks field 'premise'; cb reads premise, hypothesis": (["rte", "cb"], [rte, rte]),
        "adapter 'cb': input 1 must be a record": (["rte", "cb"], [rte, 3]),
        "inputs must be a list of records or texts": ("rte", rte),
    }
    for message, (names, inputs) in cases.items():
        with pytest.raises(UserError) as error:
            bank.generate(names, inputs)
        assert message in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(UserError, match="eval_mode must be one of generate, rank, got 'beam'"):
        bank.predict(["rte", "cb"], [rte, cb], eval_mode="beam")
    assert bank.generate([], []) == []


def test_an_over_long_input_is_refused_never_cut(tokenizer):
    bank = AdapterBank(load_t5(str(DEMO_MODEL)), tokenizer, max_source_length=24)
    bank.add("rte", random_export("compacter", "rte", 1))
    short = {"sentence1": "A cat.", "sentence2": "An animal."}
    long = {"sentence1": "A cat sat on the mat " * 4, "sentence2": "An animal."}
    assert len(bank.generate("rte", [short])) == 1
    with pytest.raises(UserError) as error:
        bank.generate(["rte", "rte"], [short, long])
    assert str(error.value).startswith("adapter 'rte': input 1 is ")
    assert "tokens long, more than max_source_length 24; shorten it (inputs are never cut)" in str(error.value)
    assert AdapterBank(load_t5(str(DEMO_MODEL)), tokenizer).max_source_length == 512  # T5 tokenizers declare it


def test_the_mixed_model_refuses_to_run_unrouted(tokenizer):
    bank = bank_of(tokenizer, {"a": ("adapter", "rte", 1), "b": ("bitfit", "cb", 2)})
    tokens = tokenizer(["hello", "world"], return_tensors="pt", padding=True)
    model = bank._mixed_model().model
    with pytest.raises(RuntimeError, match="outside MixedModel.route"):
        model.generate(**tokens, max_new_tokens=2)
    with pytest.raises(RuntimeError, match="routed 1 rows got a batch of 2"), bank._mixed_model().route(["a"], "cpu"):
        model.generate(**tokens, max_new_tokens=2)
