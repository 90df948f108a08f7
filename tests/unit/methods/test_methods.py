"""Every method of the paper on tiny T5s (original and gated) and on the T5-base architecture (meta device).

What is checked: the trainable counts behind Table 1; only the intended parameters train; everything else is
bit-identical after an optimizer step; every trainable parameter gets a gradient (DDP needs no
find_unused_parameters); the adapters' placement; Compacter's shared A; prompt tuning in generation;
Intrinsic-SAID's reparameterisation; PEFT; bad hyper-parameters as one-line UserErrors.
"""

import copy
import inspect
import re

import pytest
import torch
from jsonargparse import ArgumentParser
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration

from compacter_pl.architectures import build_t5, count_parameters
from compacter_pl.errors import UserError
from compacter_pl.layers import LowRankPHMLinear, SharedPHMRules, kronecker_sum
from compacter_pl.methods import (
    Adapter,
    AdapterDrop,
    BitFit,
    Compacter,
    CompacterPlusPlus,
    IntrinsicSAID,
    Peft,
    PfeifferAdapter,
    PHMAdapter,
    PromptTuning,
    t5_parts,
    trainable_names,
)
from compacter_pl.tools.methods import ALL_METHODS, PAPER_METHODS, paper_percent
from tests.helpers import DEMO_MODEL, KEYS, tiny_batch, tiny_gated_config, tiny_method

ARCHITECTURES = ("original", "gated")


def tiny_model(architecture: str) -> T5ForConditionalGeneration:
    torch.manual_seed(0)
    if architecture == "original":
        return T5ForConditionalGeneration.from_pretrained(DEMO_MODEL)
    return build_t5(tiny_gated_config(), device="cpu")


def applied(key: str, architecture: str = "original") -> T5ForConditionalGeneration:
    model = tiny_model(architecture)
    method = tiny_method(key)
    method.check(model.config)
    method.apply(model)
    return model


def layer_norm_names(model) -> set[str]:
    ids = {id(norm.weight) for norm in t5_parts.layer_norms(model)}
    return {name for name, p in model.named_parameters() if id(p) in ids}


def intended(key: str, name: str, model) -> bool:
    """Which parameters each method is meant to train."""
    adapter_like = ".adapter." in name or name in layer_norm_names(model)
    return {
        "full": True,
        "adapter": adapter_like,
        "pfeiffer": adapter_like,
        "adapterdrop": adapter_like,
        "adapter_lowrank": adapter_like,
        "phm_adapter": adapter_like,
        "compacter": adapter_like or name == "shared_phm_rules.A",
        "compacter++": adapter_like or name == "shared_phm_rules.A",
        "prompt_random": name == "encoder.prompt.weight",
        "prompt_vocab": name == "encoder.prompt.weight",
        "intrinsic_said": name in {"intrinsic_said.z", "intrinsic_said.lambdas"},
        "bitfit": name.endswith(".bias"),
        "lora": ".lora_A." in name or ".lora_B." in name,
    }[key]


# --- parameter counts on the T5-base architecture (Table 1) ------------------------------------------------


@pytest.mark.parametrize("row", PAPER_METHODS, ids=[row.key for row in PAPER_METHODS])
def test_t5_base_trainable_counts_match_the_spec(row):
    model = build_t5("t5-base", device="meta")
    assert count_parameters(model) == 222_903_552
    method = row.build()
    method.check(model.config)
    method.apply(model)
    trainable = count_parameters(model, trainable_only=True)
    assert abs(trainable - row.t5_base_params) <= row.tolerance, trainable
    assert round(100 * trainable / 222_903_552, 3) == pytest.approx(paper_percent(row.key))


def test_bitfit_count_is_every_bias_of_the_block_layers_and_the_output_layer():
    model = build_t5("t5-base", device="meta")
    BitFit().apply(model)
    attention, feed_forward, norms, head = 4 * 768, 3072 + 768, 768, 32128
    expected = 12 * (attention + feed_forward + 2 * norms) + 12 * (2 * attention + feed_forward + 3 * norms) + head
    assert count_parameters(model, trainable_only=True) == expected == 280_960


def test_bitfit_with_the_output_layer_trains_the_biases_and_an_untied_head_only():
    """The paper's Appendix C (Table 7's BitFit row): the biases, plus the output layer's own weight."""
    model = tiny_model("original")
    embedding = model.shared.weight.detach().clone()
    BitFit(train_output_layer=True).apply(model)
    assert model.lm_head.weight is not model.shared.weight and torch.equal(model.lm_head.weight, embedding)
    names = trainable_names(model)
    assert names == {n for n, _ in model.named_parameters() if n.endswith(".bias")} | {"lm_head.weight"}
    assert "shared.weight" not in names and not model.shared.weight.requires_grad
    model(**tiny_batch()).loss.backward()
    assert model.lm_head.weight.grad is not None and model.shared.weight.grad is None
    on_t5_base = build_t5("t5-base", device="meta")
    BitFit(train_output_layer=True).apply(on_t5_base)
    assert count_parameters(on_t5_base, trainable_only=True) == 280_960 + 32128 * 768
    assert count_parameters(on_t5_base) == 222_903_552 + 280_960 + 32128 * 768  # the untied head: its own copy


def test_compacter_count_on_a_real_random_t5_base():
    model = build_t5("t5-base", device="cpu")
    method = Compacter()
    method.apply(model)
    assert count_parameters(model, trainable_only=True) == 161_728
    assert len(layer_norm_names(model)) == 62
    assert sum(model.get_parameter(n).numel() for n in layer_norm_names(model)) == 47_616
    with torch.no_grad():  # a forward pass through all 48 adapters
        ids = torch.tensor([[5, 6, 7, 1]])
        assert model(input_ids=ids, labels=ids).loss.isfinite()


def test_the_gated_architecture_counts_its_two_input_projections():
    model = build_t5("google/flan-t5-base", device="meta")
    assert count_parameters(model) == 247_577_856  # untied output layer: 24,674,304 more than t5-base
    assert model.lm_head.weight is not model.shared.weight
    BitFit().apply(model)
    # wi_0 and wi_1 (2 x 2048) instead of wi (3072): 24 x 1024 more biases than on t5-base
    assert count_parameters(model, trainable_only=True) == 280_960 + 24 * 1024


# --- what trains, what stays, what gets a gradient -----------------------------------------------------------


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("key", KEYS)
def test_only_intended_parameters_train_and_the_rest_stays_bit_identical(key, architecture):
    model = applied(key, architecture)
    names = trainable_names(model)
    assert names, "a method must train something"
    assert names == {n for n, _ in model.named_parameters() if intended(key, n, model)}
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss = model(**tiny_batch()).loss
    loss.backward()
    # Every trainable parameter takes part in the graph: DDP needs no find_unused_parameters.
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
    optimizer.step()
    for name, p in model.named_parameters():
        if name not in names:
            assert torch.equal(p, before[name]), f"{name} changed"
    assert any(not torch.equal(model.get_parameter(n), before[n]) for n in names)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("key", ["adapter", "bitfit", "intrinsic_said", "compacter"])
def test_a_method_that_has_not_trained_yet_leaves_the_outputs_alone(key, architecture):
    """Zero biases, z = 0, or an adapter whose up-projection is zero: the model computes what T5 computed."""
    base = tiny_model(architecture).eval()
    model = copy.deepcopy(base)
    tiny_method(key).apply(model)
    for name, p in model.named_parameters():
        if ".adapter.up." in name:
            with torch.no_grad():
                p.zero_()
    batch = tiny_batch()
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits, base(**batch).logits, atol=1e-6)


def test_output_layer_option_unties_a_tied_head_and_trains_only_the_copy():
    model = tiny_model("original")
    embedding = model.shared.weight.detach().clone()
    Compacter(bottleneck=8, train_output_layer=True).apply(model)
    assert model.lm_head.weight is not model.shared.weight
    assert torch.equal(model.lm_head.weight, embedding)
    assert "lm_head.weight" in trainable_names(model) and "shared.weight" not in trainable_names(model)


# --- adapters ---------------------------------------------------------------------------------------------


def adapter_hosts(model) -> list[str]:
    return [name for name, module in model.named_modules() if hasattr(module, "adapter")]


def test_houlsby_places_adapters_after_self_attention_and_feed_forward_only():
    model = applied("adapter")
    hosts = adapter_hosts(model)
    assert len(hosts) == 8  # 2 + 2 blocks x 2 sublayers
    assert all(h.endswith(("layer.0.SelfAttention", "DenseReluDense")) for h in hosts)
    assert not any("EncDecAttention" in h for h in hosts)


def test_pfeiffer_compacter_plus_plus_and_adapterdrop_placements():
    assert all(h.endswith("SelfAttention") for h in adapter_hosts(applied("pfeiffer")))
    assert all(h.endswith("DenseReluDense") for h in adapter_hosts(applied("compacter++")))
    assert len(adapter_hosts(applied("compacter++"))) == 4
    dropped = adapter_hosts(applied("adapterdrop"))
    assert len(dropped) == 4 and not any(".block.0." in h for h in dropped)


def test_an_adapter_changes_its_sublayer_output():
    model = applied("adapter").eval()
    batch = tiny_batch()
    with torch.no_grad():
        before = model(**batch).logits
        model.encoder.block[1].layer[-1].DenseReluDense.adapter.up.bias.fill_(0.5)
        assert not torch.allclose(model(**batch).logits, before)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_compacter_shares_one_a_whose_gradient_sums_every_layer(architecture):
    torch.manual_seed(0)
    model = tiny_model(architecture).double()
    Compacter(bottleneck=8).apply(model)
    rules = model.shared_phm_rules
    with torch.no_grad():
        rules.A.normal_(0.0, 0.3)  # large enough that every layer's contribution is visible
    layers = [m for m in model.modules() if isinstance(m, LowRankPHMLinear)]
    assert len(layers) == 16  # 4 blocks x 2 sublayers x (down, up)
    assert all(layer.rules() is rules.A for layer in layers)
    assert [n for n, _ in model.named_parameters() if n.endswith(".A") or n == "A"] == ["shared_phm_rules.A"]
    assert [k for k in model.state_dict() if k.endswith("A")] == ["shared_phm_rules.A"]

    batch = tiny_batch()
    model(**batch).loss.backward()
    shared_gradient = rules.A.grad.clone()

    # The same model with a private copy of A per layer: the shared gradient is the sum of theirs.
    twin = copy.deepcopy(model)
    twin.zero_grad()
    privates = []
    for layer in (m for m in twin.modules() if isinstance(m, LowRankPHMLinear)):
        private = SharedPHMRules(layer.n).double()
        private.A.data.copy_(rules.A.data)
        object.__setattr__(layer, "_shared_rules", private)
        privates.append(private)
    twin(**batch).loss.backward()
    assert all(p.A.grad.abs().sum() > 0 for p in privates)
    assert torch.allclose(shared_gradient, sum(p.A.grad for p in privates))


def test_compacter_factored_and_materialized_forms_agree_in_the_model():
    results = []
    for form in ("factored", "materialized"):
        torch.manual_seed(0)
        model = T5ForConditionalGeneration.from_pretrained(DEMO_MODEL).double()
        torch.manual_seed(1)
        Compacter(bottleneck=8, lphm_form=form).apply(model)
        with torch.no_grad():
            model.shared_phm_rules.A.normal_(0.0, 0.3)
        loss = model(**tiny_batch()).loss
        loss.backward()
        results.append((loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.requires_grad}))
    (loss_f, grads_f), (loss_m, grads_m) = results
    assert torch.allclose(loss_f, loss_m, atol=1e-10)
    assert grads_f.keys() == grads_m.keys()
    for name in grads_f:
        assert torch.allclose(grads_f[name], grads_m[name], atol=1e-9), name


def test_kronecker_identities_on_small_sizes():
    gen = torch.Generator().manual_seed(0)
    A, B, C, D = (torch.randn(*shape, generator=gen, dtype=torch.float64) for shape in ((2, 3), (4, 2), (3, 2), (2, 5)))
    # mixed product: (A (x) B)(C (x) D) = AC (x) BD
    assert torch.allclose(torch.kron(A, B) @ torch.kron(C, D), torch.kron(A @ C, B @ D))
    # transpose distributes
    assert torch.allclose(torch.kron(A, B).T, torch.kron(A.T, B.T))
    # row-vector form the factored LPHM uses: x (A_i (x) s_i t_i) = flat(A_i^T X s_i t_i), X = x as (n, k/n)
    n, k, d = 3, 6, 9
    rules = torch.randn(n, n, n, generator=gen, dtype=torch.float64)
    s = torch.randn(n, k // n, 1, generator=gen, dtype=torch.float64)
    t = torch.randn(n, 1, d // n, generator=gen, dtype=torch.float64)
    x = torch.randn(k, generator=gen, dtype=torch.float64)
    X = x.reshape(n, k // n)
    factored = sum((rules[i].T @ X @ s[i] @ t[i]).reshape(-1) for i in range(n))
    assert torch.allclose(x @ kronecker_sum(rules, s @ t), factored)
    assert torch.allclose(x @ kronecker_sum(rules, s @ t), x @ sum(torch.kron(rules[i], s[i] @ t[i]) for i in range(n)))


# --- prompt tuning ------------------------------------------------------------------------------------------


def test_prompt_tuning_prepends_to_the_encoder_and_extends_both_masks():
    model = applied("prompt_random").eval()
    batch = tiny_batch()
    with torch.no_grad():
        out = model(**batch, output_attentions=False)
    assert out.encoder_last_hidden_state.shape[1] == batch["input_ids"].shape[1] + 5
    # Padding must not matter: the padded example scores as it does alone (both masks were extended).
    alone = {k: v[:1] for k, v in batch.items()}
    alone["input_ids"], alone["attention_mask"] = alone["input_ids"][:, :6], alone["attention_mask"][:, :6]
    with torch.no_grad():
        assert torch.allclose(model(**alone).logits, out.logits[:1], atol=1e-5)


def test_prompt_tuning_generation_uses_the_prompt():
    base = tiny_model("original").eval()
    model = copy.deepcopy(base)
    PromptTuning(num_tokens=5).apply(model)
    batch = tiny_batch()
    kwargs = {
        "input_ids": batch["input_ids"],
        "attention_mask": batch["attention_mask"],
        "max_new_tokens": 4,
        "do_sample": False,
        "output_scores": True,
        "return_dict_in_generate": True,
    }
    with torch.no_grad():
        prompted, plain = model.generate(**kwargs), base.generate(**kwargs)
    assert prompted.sequences.shape[0] == 3
    assert not torch.allclose(prompted.scores[0], plain.scores[0])
    # A padded batch generates what each example generates alone.
    with torch.no_grad():
        alone = model.generate(
            input_ids=batch["input_ids"][:1, :6],
            attention_mask=batch["attention_mask"][:1, :6],
            max_new_tokens=4,
            do_sample=False,
        )
    assert torch.equal(alone[0], prompted.sequences[0, : alone.shape[1]])


def test_prompt_vocab_init_copies_embeddings_of_sampled_tokens():
    model = tiny_model("original")
    method = PromptTuning(num_tokens=5, init="vocab", init_vocab_size=100, seed=3)
    method.apply(model)
    ids = method.vocab_ids(220)
    assert len(set(ids.tolist())) == 5 and int(ids.max()) < 100
    assert torch.equal(model.encoder.prompt.weight, model.shared.weight[ids])
    random_prompt = applied("prompt_random").encoder.prompt.weight
    assert random_prompt.abs().max() <= 0.5 and random_prompt.std() > 0.1


def test_prompt_longer_than_the_source_is_refused():
    with pytest.raises(UserError, match="longer than the source length 64.*num_tokens"):
        PromptTuning(num_tokens=100).check(T5Config(), max_source_length=64)
    PromptTuning(num_tokens=64).check(T5Config(), max_source_length=64)


# --- Intrinsic-SAID -----------------------------------------------------------------------------------------


def test_said_moves_every_tensor_along_its_fastfood_projection():
    model = applied("intrinsic_said")
    state = model.intrinsic_said
    m = state.lambdas.numel()
    assert m == len(list(tiny_model("original").parameters()))  # the tied embedding/output layer counts once
    assert state.z.numel() + m == 500
    with torch.no_grad():
        state.z.normal_()
        state.lambdas.uniform_(0.5, 2.0)
    norm = model.encoder.final_layer_norm
    original = norm.parametrizations.weight.original
    index = state.names.index("encoder.final_layer_norm.weight")
    projection, signs = state.projections()[index]
    dense = projection.dense_matrix(torch.float64)  # (D, d - m): small here, never built in training
    expected = original.double() + state.lambdas[index].double() * dense @ (state.z.double() * signs.double())
    assert torch.allclose(norm.weight.double(), expected, atol=1e-5)
    # The tied embedding and output layer move together, and no projection holds a dense matrix.
    assert torch.equal(model.shared.weight, model.lm_head.weight)
    assert all(b.dim() == 1 for p, _ in state.projections() for b in p.buffers())


def test_said_generation_and_its_cache_follow_z():
    model = applied("intrinsic_said").eval()
    batch = tiny_batch()
    with torch.no_grad():
        first = model(**batch).logits
        model.intrinsic_said.z.add_(1.0)  # an in-place change (as the optimizer makes) invalidates the cache
        second = model(**batch).logits
        generated = model.generate(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], max_new_tokens=3, do_sample=False
        )
    assert not torch.allclose(first, second)
    assert generated.shape[0] == 3


def test_said_per_tensor_projections_also_work():
    model = tiny_model("original")
    IntrinsicSAID(intrinsic_dim=300, share_random_factors=False).apply(model)
    model(**tiny_batch()).loss.backward()
    assert model.intrinsic_said.z.grad.abs().sum() > 0
    assert model.intrinsic_said.buffer_bytes() > 0


def test_said_chunked_projection_equals_each_tensor_alone():
    # In a forward, each size's tensors are projected together (one batched call per chunk); outside one, alone.
    model = applied("intrinsic_said")
    state = model.intrinsic_said
    with torch.no_grad():
        state.z.normal_()
        state.lambdas.uniform_(0.5, 2.0)
    weights = [torch.randn(shape) for shape in state.shapes]
    state.begin_forward()
    chunked = [state.delta(i, w) for i, w in enumerate(weights)]
    sum((d * w).sum() for d, w in zip(chunked, weights, strict=True)).backward()
    state.end_forward()
    assert len(state._chunks) < len(state.shapes)  # tensors of a size share a call
    grads = state.z.grad.clone(), state.lambdas.grad.clone()
    state.z.grad = state.lambdas.grad = None
    alone = [state.delta(i, w) for i, w in enumerate(weights)]  # no forward: no cache, one tensor at a time
    sum((d * w).sum() for d, w in zip(alone, weights, strict=True)).backward()
    for a, b in zip(chunked, alone, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    assert torch.allclose(grads[0], state.z.grad, rtol=1e-4, atol=1e-5)
    assert torch.allclose(grads[1], state.lambdas.grad, rtol=1e-4, atol=1e-5)


def test_said_projection_version_1_rebuilds_the_original_stream():
    def start(version):
        model = tiny_model("original")
        IntrinsicSAID(intrinsic_dim=500, seed=3, projection_version=version).apply(model)
        state = model.intrinsic_said
        with torch.no_grad():
            state.z.copy_(torch.linspace(-1, 1, state.z.numel()))
            return state, torch.cat([state.project(i) for i in range(len(state.shapes))])

    old, old_start = start(1)
    new, new_start = start(2)
    assert not torch.allclose(old_start, new_start)
    # Version 1 draws each tensor's signs exactly as the original code did.
    generator = torch.Generator().manual_seed(3 * 1_000_003 + 5)
    expected = torch.randint(0, 2, (old.z.numel(),), generator=generator, dtype=torch.int8) * 2 - 1
    assert torch.equal(old.projections()[5][1], expected)
    assert IntrinsicSAID(intrinsic_dim=500).config()["init_args"]["projection_version"] == 2
    assert IntrinsicSAID.saved_init_args({"intrinsic_dim": 500})["projection_version"] == 1  # saved before it


def test_said_is_cheap_to_apply_on_t5_base_and_counts_d_prime():
    model = build_t5("t5-base", device="meta")
    IntrinsicSAID().apply(model)
    assert count_parameters(model, trainable_only=True) == 20_000
    assert model.intrinsic_said._projections is None  # built lazily, at the first forward


# --- PEFT -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_peft_lora_and_ia3_inject_and_train_only_their_parameters(architecture):
    lora = applied("lora", architecture)
    attentions = 2 + 2 * 2  # encoder: self; decoder: self and cross
    assert count_parameters(lora, trainable_only=True) == attentions * 2 * 8 * (64 + 64)  # (q, v) x r (in + out)
    ia3 = tiny_model(architecture)
    Peft({"peft_type": "IA3"}).apply(ia3)
    assert trainable_names(ia3) and all("ia3_l" in n for n in trainable_names(ia3))


def test_peft_bad_configs_are_one_line_user_errors():
    config = T5Config()
    with pytest.raises(UserError, match="cannot be injected.*LORA"):
        Peft({"peft_type": "NOPE"}).check(config)
    with pytest.raises(UserError, match="bad LORA config.*rr"):
        Peft({"peft_type": "LORA", "rr": 3}).check(config)
    with pytest.raises(UserError, match="PromptTuning"):
        Peft({"peft_type": "PROMPT_TUNING", "num_virtual_tokens": 5}).check(config)


# --- bad hyper-parameters -------------------------------------------------------------------------------------


TINY = T5Config.from_pretrained(DEMO_MODEL)


@pytest.mark.parametrize(
    "make,fragment",
    [
        (lambda: Compacter(n=5, bottleneck=10).check(TINY), "n=5 does not divide the model width d_model=64"),
        (lambda: Compacter(n=4, bottleneck=6).check(TINY), "n=4 does not divide the bottleneck=6"),
        (lambda: Compacter(n=4, bottleneck=2).check(TINY), "bottleneck=2 is smaller than n=4"),
        (lambda: Compacter().check(TINY), "bottleneck 2 (d_model 64 // reduction_factor 32) is smaller than n=4"),
        (lambda: PHMAdapter(n=8, bottleneck=4).check(TINY), "smaller than n=8"),
        (lambda: Adapter(sublayers=["cross_attention"]), "unknown sublayer 'cross_attention'"),
        (lambda: CompacterPlusPlus(non_linearity="gelu2"), "unknown non_linearity 'gelu2'"),
        (lambda: Adapter(reduction_factor=0), "reduction_factor=0 must be a positive integer"),
        (lambda: Adapter(reduction_factor=128).check(TINY), "is empty"),
        (lambda: AdapterDrop().check(TINY), "places no adapter"),
        (lambda: PfeifferAdapter(sublayers=[]).check(TINY), "no sublayers"),
        (lambda: PromptTuning(init="vocabulary"), "unknown prompt init"),
        (lambda: IntrinsicSAID(intrinsic_dim=30).check(TINY), "must exceed the number of weight tensors"),
        (lambda: IntrinsicSAID(projection_version=3), "projection_version=3 must be one of 1, 2"),
        # a check names the full command-line option to change
        (lambda: Compacter(n=5, bottleneck=10).check(TINY), "set --model.method.init_args.n to one of 1, 2 "),
        (lambda: Compacter(n=4, bottleneck=6).check(TINY), "or --model.method.init_args.bottleneck to a multiple of 4"),
        (lambda: Compacter().check(TINY), "--model.method.init_args.bottleneck"),
        (lambda: Adapter(reduction_factor=128).check(TINY), "lower --model.method.init_args.reduction_factor"),
        (lambda: AdapterDrop().check(TINY), "--model.method.init_args.dropped_blocks"),
        (lambda: PfeifferAdapter(sublayers=[]).check(TINY), "--model.method.init_args.sublayers"),
        (lambda: PromptTuning().check(TINY, 50), "lower --model.method.init_args.num_tokens or raise --data.max_"),
        (lambda: IntrinsicSAID(intrinsic_dim=30).check(TINY), "raise --model.method.init_args.intrinsic_dim"),
    ],
)
def test_bad_hyper_parameters_are_one_line_user_errors(make, fragment):
    with pytest.raises(UserError) as error:
        make()
    assert fragment in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("n, bottleneck", [(4, 6), (5, 10), (4, 2), (8, 12), (16, 24)])
def test_the_n_hint_offers_only_values_dividing_both_d_model_and_the_bottleneck(n, bottleneck):
    with pytest.raises(UserError) as error:
        Compacter(n=n, bottleneck=bottleneck).check(TINY)  # d_model 64
    offered = re.search(r"--model\.method\.init_args\.n to one of ([\d, ]+)", str(error.value)).group(1)
    values = [int(v) for v in offered.split(", ")]
    assert values == [k for k in range(1, bottleneck + 1) if 64 % k == 0 and bottleneck % k == 0], str(error.value)
    for k in values:  # each value offered passes the check
        Compacter(n=k, bottleneck=bottleneck).check(TINY)


def cli_help_of(cls: type) -> dict[str, str]:
    """{argument: help text} as the CLI builds them for `--model.method.help` (from the signature and the
    docstrings of the class and its parents)."""
    parser = ArgumentParser()
    parser.add_class_arguments(cls, "method")
    return {a.dest.removeprefix("method."): a.help or "" for a in parser._actions if a.dest.startswith("method.")}


def test_method_config_round_trips_and_the_cli_documents_every_argument():
    for row in ALL_METHODS:
        method = row.build()
        config = method.config()
        cls = type(method)
        assert type(cls(**config["init_args"])).__name__ == cls.__name__
        assert all(
            isinstance(v, (int, float, str, bool, list, dict, type(None)))
            and type(v) in (int, float, str, bool, list, dict, type(None))
            for v in config["init_args"].values()
        ), config
        assert inspect.signature(cls).parameters.keys() == config["init_args"].keys()
        documented = cli_help_of(cls)
        assert documented.keys() == config["init_args"].keys(), cls.__name__
        assert all(documented.values()), (
            f"{cls.__name__} leaves undocumented: {[name for name, text in documented.items() if not text]}"
        )


def test_adapter_methods_inherit_the_shared_arguments_with_their_own_defaults():
    shared = ("reduction_factor", "bottleneck", "non_linearity", "sublayers", "train_layer_norms", "train_output_layer")
    for cls in (Adapter, PfeifferAdapter, AdapterDrop, PHMAdapter, Compacter, CompacterPlusPlus):
        assert set(shared) <= set(inspect.signature(cls).parameters), cls.__name__
    assert PfeifferAdapter().sublayers == ["self_attention"] and CompacterPlusPlus().sublayers == ["feed_forward"]
    # The authors' activation (GeLU's tanh approximation) is every adapter's default.
    assert {cls().non_linearity for cls in (Adapter, PfeifferAdapter, AdapterDrop, PHMAdapter)} == {"gelu_new"}
    assert CompacterPlusPlus(n=2, bottleneck=8, train_output_layer=True).config()["init_args"] == {
        "sublayers": ["feed_forward"],
        "n": 2,
        "rank": 1,
        "lphm_form": "auto",
        "init": "glorot-uniform",
        "reduction_factor": 32,
        "bottleneck": 8,
        "non_linearity": "gelu_new",
        "train_layer_norms": True,
        "train_output_layer": True,
    }
    # An export written before the shared arguments were declared once: flat init_args, every one by name.
    written = {
        "n": 4,
        "rank": 1,
        "reduction_factor": 32,
        "bottleneck": 8,
        "non_linearity": "gelu",
        "sublayers": ["feed_forward"],
        "train_layer_norms": True,
        "train_output_layer": False,
        "lphm_form": "auto",
        "init": "glorot-uniform",
    }
    assert CompacterPlusPlus(**written).config()["init_args"] == {**written}
    # Saved while gelu was the default (before the authors' gelu_new): a config without it meant gelu.
    unnamed = {k: v for k, v in written.items() if k != "non_linearity"}
    assert CompacterPlusPlus.saved_init_args(unnamed)["non_linearity"] == "gelu"
    assert Adapter.saved_init_args({"non_linearity": "relu"})["non_linearity"] == "relu"


def test_layer_norms_and_their_count():
    model = tiny_model("original")
    assert len(t5_parts.layer_norms(model)) == 2 * 2 + 1 + 2 * 3 + 1
    assert all(isinstance(norm.weight, nn.Parameter) for norm in t5_parts.layer_norms(model))


def test_impossible_hyper_parameters_fail_before_the_weights_load(monkeypatch):
    import compacter_pl.training.module as module

    def must_not_load(name):
        raise AssertionError("the weights were loaded before the method was checked")

    monkeypatch.setattr(module, "load_t5", must_not_load)
    with pytest.raises(UserError, match="n=5 does not divide the model width"):
        module.TextToTextModule(str(DEMO_MODEL), method=Compacter(n=5, bottleneck=10))
    with pytest.raises(UserError, match="smaller than n=4"):
        module.TextToTextModule("google-t5/t5-base", method=Compacter(bottleneck=2))  # known offline: no download
