"""The adapters start as in the authors' code (rabeehk/compacter, read, not copied).

- PHM-Adapter's B, Compacter's s and t: `glorot-uniform`, i.e. torch's xavier_uniform_ with gain sqrt(2), applied
  to each 2-D slice W[i] (hypercomplex/inits.py, layers.py `init_W`). A 2-D (p, q) tensor has, for torch,
  fan_in = q and fan_out = p, so the bound is sqrt(2) * sqrt(6 / (p + q)).
- Adapter-LowRank's u (in, r) and v (r, out): the same glorot-uniform on the whole 2-D tensors (low_rank_layer.py).
- Adapter, Pfeiffer, AdapterDrop: their nn.Linear projections are N(0, 0.01), not truncated, biases zero
  (T5PreTrainedModel._init_weights of their modeling_t5.py).
Each bound below is computed by hand from those shapes, not read from the code under test.
"""

import math

import pytest
import torch
from transformers import T5Config

from compacter_pl.architectures import build_t5
from compacter_pl.errors import UserError
from compacter_pl.layers import LowRankLinear, LowRankPHMLinear, PHMLinear, SharedPHMRules, houlsby_linear
from compacter_pl.methods import Adapter, AdapterDrop, AdapterLowRank, Compacter, CompacterPlusPlus, PHMAdapter
from compacter_pl.tools.methods import method_row

GAIN = math.sqrt(2.0)  # the authors' glorot_uniform: xavier_uniform_(tensor, gain=math.sqrt(2))


def authors_bound(rows: int, cols: int) -> float:
    """xavier_uniform_ on a 2-D (rows, cols) tensor: fan_in = cols, fan_out = rows."""
    fan_in, fan_out = cols, rows
    return GAIN * math.sqrt(6.0 / (fan_in + fan_out))


def check_uniform(values: torch.Tensor, bound: float, check_variance: bool = True) -> None:
    values = values.detach().double().flatten()
    assert values.abs().max() <= bound
    # Beyond what gain 1 could draw (bound / sqrt 2): the gain is really sqrt(2).
    assert values.abs().max() > bound / GAIN
    if check_variance:  # Uniform(-b, b) has variance b^2 / 3
        assert values.var().item() == pytest.approx(bound**2 / 3, rel=0.1)


def test_hand_computed_bounds_for_the_papers_shapes():
    # Compacter, n 4, r 1, k 768, d 24: down s_i (192, 1), t_i (1, 6); up s_i (6, 1), t_i (1, 192).
    assert authors_bound(192, 1) == pytest.approx(math.sqrt(12 / 193)) == pytest.approx(0.24935, abs=1e-5)
    assert authors_bound(1, 6) == pytest.approx(math.sqrt(12 / 7)) == pytest.approx(1.30931, abs=1e-5)
    # PHM-Adapter, n 12: down B_i (64, 2), up B_i (2, 64).
    assert authors_bound(64, 2) == authors_bound(2, 64) == pytest.approx(0.42640, abs=1e-5)
    # Adapter-LowRank, r 1: down u (768, 1), v (1, 24); up u (24, 1), v (1, 768).
    assert authors_bound(768, 1) == pytest.approx(0.12492, abs=1e-5)
    assert authors_bound(1, 24) == pytest.approx(0.69282, abs=1e-5)


@pytest.mark.parametrize("in_features,out_features", [(768, 24), (24, 768)])
def test_lphm_s_and_t_are_glorot_uniform_with_gain_sqrt_2_per_slice(in_features, out_features):
    torch.manual_seed(0)
    n, rank = 4, 1
    layer = LowRankPHMLinear(in_features, out_features, n, rank, shared_A=SharedPHMRules(n))
    p, q = in_features // n, out_features // n
    assert layer.s.shape == (n, p, rank) and layer.t.shape == (n, rank, q)
    check_uniform(layer.s, authors_bound(p, rank), check_variance=p * n >= 768)
    check_uniform(layer.t, authors_bound(rank, q), check_variance=q * n >= 768)
    assert torch.all(layer.bias == 0)


def test_lphm_variance_on_a_large_layer():
    torch.manual_seed(1)
    layer = LowRankPHMLinear(4096, 2048, n=4, rank=4, a_init_std=1e-4)
    check_uniform(layer.s, authors_bound(1024, 4))  # 16,384 numbers
    check_uniform(layer.t, authors_bound(4, 512))  # 8,192 numbers


@pytest.mark.parametrize("in_features,out_features", [(768, 24), (24, 768)])
def test_phm_b_is_glorot_uniform_with_gain_sqrt_2_per_slice(in_features, out_features):
    torch.manual_seed(0)
    n = 12
    layer = PHMLinear(in_features, out_features, n)
    p, q = in_features // n, out_features // n
    assert layer.B.shape == (n, p, q)
    check_uniform(layer.B, authors_bound(p, q))  # 1,536 numbers
    assert layer.A.std().item() == pytest.approx(0.01, rel=0.15)  # per-layer A, unchanged: N(0, 0.01)
    assert torch.all(layer.bias == 0)


@pytest.mark.parametrize("in_features,out_features", [(768, 24), (24, 768)])
def test_low_rank_u_and_v_are_glorot_uniform_with_gain_sqrt_2(in_features, out_features):
    torch.manual_seed(0)
    layer = LowRankLinear(in_features, out_features, rank=1)
    check_uniform(layer.u, authors_bound(in_features, 1), check_variance=in_features >= 768)
    check_uniform(layer.v, authors_bound(1, out_features), check_variance=out_features >= 768)
    assert torch.all(layer.bias == 0)


def test_houlsby_projections_are_untruncated_normal_std_0_01():
    torch.manual_seed(0)
    layer = houlsby_linear(768, 24)
    weight = layer.weight.detach().double().flatten()  # 18,432 numbers
    assert weight.std().item() == pytest.approx(0.01, rel=0.03)
    assert weight.mean().abs().item() < 1e-3
    beyond = (weight.abs() > 0.02).double().mean().item()  # N(0, 1): P(|x| > 2) = 4.55%
    assert beyond == pytest.approx(0.0455, abs=0.008)
    assert weight.abs().max() > 0.03  # beyond 3 std too: nothing is cut off
    assert torch.all(layer.bias == 0)


def t5_768():
    """A one-block T5 of T5-base's width, so the methods' defaults (d = 768 / 32 = 24) apply."""
    return build_t5(
        T5Config(d_model=768, d_ff=64, d_kv=8, num_heads=2, num_layers=1, num_decoder_layers=1, vocab_size=64),
        device="cpu",
    )


def adapter_modules(model):
    return [m for name, m in model.named_modules() if name.endswith(".adapter")]


@pytest.mark.parametrize("method_class", [Compacter, CompacterPlusPlus])
def test_compacter_methods_start_with_the_authors_init(method_class):
    torch.manual_seed(0)
    model = t5_768()
    method_class().apply(model)
    adapters = adapter_modules(model)
    assert adapters
    for adapter in adapters:
        down, up = adapter.down, adapter.up
        check_uniform(down.s, authors_bound(192, 1))
        check_uniform(down.t, authors_bound(1, 6), check_variance=False)
        check_uniform(up.s, authors_bound(6, 1), check_variance=False)
        check_uniform(up.t, authors_bound(1, 192))
    assert model.shared_phm_rules.A.std().item() == pytest.approx(1e-4, rel=0.3)  # 64 numbers


def test_phm_adapter_starts_with_the_authors_init():
    torch.manual_seed(0)
    model = t5_768()
    PHMAdapter().apply(model)
    for adapter in adapter_modules(model):
        check_uniform(adapter.down.B, authors_bound(64, 2))
        check_uniform(adapter.up.B, authors_bound(2, 64))


def test_adapter_lowrank_starts_with_the_authors_init():
    torch.manual_seed(0)
    model = t5_768()
    AdapterLowRank().apply(model)
    for adapter in adapter_modules(model):
        check_uniform(adapter.down.u, authors_bound(768, 1))
        check_uniform(adapter.down.v, authors_bound(1, 24), check_variance=False)
        check_uniform(adapter.up.u, authors_bound(24, 1), check_variance=False)
        check_uniform(adapter.up.v, authors_bound(1, 768))


@pytest.mark.parametrize("method", [Adapter(), AdapterDrop(dropped_blocks=[]), method_row("pfeiffer").build()])
def test_houlsby_methods_start_untruncated(method):
    torch.manual_seed(0)
    model = t5_768()
    method.apply(model)
    weights = torch.cat([p.detach().flatten() for a in adapter_modules(model) for p in (a.down.weight, a.up.weight)])
    assert weights.std().item() == pytest.approx(0.01, rel=0.05)
    assert weights.abs().max() > 0.03


@pytest.mark.parametrize("method_class", [PHMAdapter, Compacter, CompacterPlusPlus, AdapterLowRank])
def test_glorot_normal_is_the_authors_other_choice(method_class):
    torch.manual_seed(0)
    model = t5_768()
    method = method_class(init="glorot-normal")
    assert method.config()["init_args"]["init"] == "glorot-normal"
    method.apply(model)
    down = adapter_modules(model)[0].down
    if isinstance(down, PHMLinear):
        factor, (rows, cols) = down.B, down.B.shape[1:]
    elif isinstance(down, LowRankPHMLinear):
        factor, (rows, cols) = down.s, down.s.shape[1:]
    else:
        factor, (rows, cols) = down.u, down.u.shape
    std = GAIN * math.sqrt(2.0 / (rows + cols))  # xavier_normal_ with gain sqrt(2)
    assert factor.detach().double().std().item() == pytest.approx(std, rel=0.1)
    assert factor.abs().max() > authors_bound(rows, cols)  # a normal reaches beyond the uniform's bound


def test_the_default_init_is_the_authors_and_a_bad_one_is_a_user_error():
    for method_class in (PHMAdapter, Compacter, CompacterPlusPlus, AdapterLowRank):
        assert method_class().init == "glorot-uniform"
    with pytest.raises(UserError, match="unknown init 'xavier'.*glorot-uniform"):
        Compacter(init="xavier")
