"""Tests for compacter_pl.layers: PHM / LPHM layers, shared PHM rules, Fastfood projections."""

import copy
import math

import pytest
import torch
from torch import nn

from compacter_pl.layers import (
    FastfoodProjection,
    LowRankPHMLinear,
    PHMLinear,
    SharedPHMRules,
    choose_lphm_form,
    fast_walsh_hadamard,
    kronecker_sum,
    lphm_multiply_adds,
)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- kronecker_sum and the PHM layer --------------------------------------------------------


@pytest.mark.parametrize("n,p,q", [(1, 3, 2), (2, 3, 5), (4, 6, 1), (3, 1, 1)])
def test_kronecker_sum_matches_loop_of_kron(n, p, q):
    gen = torch.Generator().manual_seed(0)
    A = torch.randn(n, n, n, generator=gen, dtype=torch.float64)
    B = torch.randn(n, p, q, generator=gen, dtype=torch.float64)
    expected = sum(torch.kron(A[i], B[i]) for i in range(n))
    assert torch.allclose(kronecker_sum(A, B), expected)


def test_phm_linear_parameter_count_and_output():
    layer = PHMLinear(768, 24, n=12).double()
    assert count(layer) == 12**3 + 768 * 24 // 12 + 24
    assert torch.all(layer.bias == 0)
    x = torch.randn(2, 5, 768, dtype=torch.float64)
    expected = x @ sum(torch.kron(layer.A[i], layer.B[i]) for i in range(12)) + layer.bias
    assert torch.allclose(layer(x), expected)


def test_phm_linear_init_scales():
    torch.manual_seed(0)
    layer = PHMLinear(768, 96, n=4)
    bound = math.sqrt(2.0) * math.sqrt(6.0 / (768 // 4 + 96 // 4))  # the authors' glorot-uniform: gain sqrt(2)
    assert layer.B.abs().max() <= bound
    assert layer.B.abs().max() > 0.9 * bound
    assert abs(layer.A.std().item() - 0.01) < 0.003


# --- the low-rank PHM (LPHM) layer --------------------------------------------------------


def test_lphm_parameter_counts():
    rules = SharedPHMRules(4)
    down = LowRankPHMLinear(768, 24, n=4, rank=1, shared_A=rules)
    up = LowRankPHMLinear(24, 768, n=4, rank=1, shared_A=rules)
    assert (down.s.numel(), down.t.numel(), down.bias.numel()) == (4 * 192 * 1, 4 * 1 * 6, 24)
    assert count(down) == 816
    assert count(LowRankPHMLinear(768, 24, n=4)) == 816 + 4**3
    # Table 1: Compacter = 48 adapters (down + up) + shared A + 47,616 layer-norm numbers.
    assert 48 * (count(down) + count(up)) + rules.A.numel() + 47_616 == 161_728
    assert 24 * (count(down) + count(up)) + rules.A.numel() + 47_616 == 104_704


def test_phm_adapter_parameter_count_matches_spec():
    down, up = PHMLinear(768, 24, n=12), PHMLinear(24, 768, n=12)
    assert 48 * (count(down) + count(up)) + 47_616 == 398_976


def _copy_lphm(layer: LowRankPHMLinear, mode: str, rules=None) -> LowRankPHMLinear:
    twin = LowRankPHMLinear(
        layer.in_features, layer.out_features, layer.n, layer.rank, shared_A=rules, mode=mode
    ).double()
    twin.load_state_dict(layer.state_dict())
    return twin


@pytest.mark.parametrize(
    "in_features,out_features,n,rank,x_shape",
    [
        (768, 24, 4, 1, (3, 768)),
        (24, 768, 4, 1, (3, 768 // 32)),
        (48, 12, 2, 3, (5, 48)),
        (36, 24, 6, 2, (2, 7, 36)),  # (batch, seq, width)
        (16, 8, 8, 4, (1, 16)),
        (8, 8, 1, 1, (4, 3, 2, 8)),
    ],
)
def test_lphm_factored_equals_materialized_values_and_gradients(in_features, out_features, n, rank, x_shape):
    torch.manual_seed(0)
    materialized = LowRankPHMLinear(in_features, out_features, n, rank, a_init_std=0.5, mode="materialized").double()
    with torch.no_grad():  # non-zero bias so its gradient path is exercised with real values
        materialized.bias.normal_()
    factored = _copy_lphm(materialized, "factored")
    x = torch.randn(x_shape, dtype=torch.float64)
    probe = torch.randn(*x_shape[:-1], out_features, dtype=torch.float64)

    results = []
    for layer in (materialized, factored):
        x_leaf = x.clone().requires_grad_(True)
        y = layer(x_leaf)
        (y * probe).sum().backward()
        grads = {name: p.grad for name, p in layer.named_parameters()}
        results.append((y.detach(), x_leaf.grad, grads))

    (y_m, gx_m, g_m), (y_f, gx_f, g_f) = results
    assert y_f.shape == (*x_shape[:-1], out_features)
    assert torch.allclose(y_m, y_f, atol=1e-10)
    assert torch.allclose(gx_m, gx_f, atol=1e-10)
    assert set(g_m) == set(g_f) == {"A", "s", "t", "bias"}
    for name in g_m:
        assert torch.allclose(g_m[name], g_f[name], atol=1e-10), name


def test_lphm_weight_is_kronecker_of_rank_r_products():
    layer = LowRankPHMLinear(12, 6, n=3, rank=2).double()
    expected = sum(torch.kron(layer.A[i], layer.s[i] @ layer.t[i]) for i in range(3))
    assert torch.allclose(layer.weight(), expected)


def test_lphm_cost_model_and_auto_choice():
    # Compacter's shapes: factored is cheaper per token than x @ W, so it wins for any token count.
    for tokens in (1, 100, 10**6):
        assert choose_lphm_form(tokens, 768, 24, 4, 1) == "factored"
    assert lphm_multiply_adds(1, 768, 24, 4, 1) == (4608 + 4 * 768 * 24 + 768 * 24, 3072 + 64 + 96)
    # Small layer, large n and rank: factored per token (4*4*(8+8+16)=512) exceeds x @ W (64), so
    # materialising (fixed cost 4*8*8 + 8*8*4/4 = 272) pays off once enough tokens share the build.
    assert choose_lphm_form(0, 8, 8, 4, 4) == "factored"
    assert choose_lphm_form(1, 8, 8, 4, 4) == "materialized"
    assert choose_lphm_form(10**4, 8, 8, 4, 4) == "materialized"
    # A crossover exists: factored for very few tokens, materialised beyond.
    assert choose_lphm_form(1, 64, 16, 8, 8) == "factored"
    assert choose_lphm_form(10**4, 64, 16, 8, 8) == "materialized"


def test_lphm_auto_mode_uses_the_token_count_of_x():
    layer = LowRankPHMLinear(64, 16, n=8, rank=8)
    assert layer.form_for(torch.zeros(1, 64)) == "factored"
    assert layer.form_for(torch.zeros(100, 100, 64)) == "materialized"
    assert LowRankPHMLinear(64, 16, n=8, rank=8, mode="factored").form_for(torch.zeros(10**4, 64)) == "factored"


# --- shared PHM rules ---------------------------------------------------------------------


class TwoAdapterParent(nn.Module):
    def __init__(self, n=4, std=1e-4):
        super().__init__()
        self.shared_phm_rules = SharedPHMRules(n, std=std)
        self.down = LowRankPHMLinear(16, 8, n, shared_A=self.shared_phm_rules)
        self.up = LowRankPHMLinear(8, 16, n, shared_A=self.shared_phm_rules, mode="factored")
        self.phm = PHMLinear(16, 16, n, shared_A=self.shared_phm_rules)

    def forward(self, x):
        return self.phm(self.up(self.down(x)))


def test_shared_rules_appear_once():
    parent = TwoAdapterParent()
    names = [name for name, _ in parent.named_parameters()]
    assert names.count("shared_phm_rules.A") == 1
    assert [name for name in names if name.endswith("A")] == ["shared_phm_rules.A"]
    assert [k for k in parent.state_dict() if k.endswith("A")] == ["shared_phm_rules.A"]
    assert parent.down.rules() is parent.shared_phm_rules.A
    assert "shared_phm_rules" not in dict(parent.down.named_modules())
    assert count(parent) == 64 + sum(count(m) for m in (parent.down, parent.up, parent.phm))


def test_shared_rules_gradient_sums_over_layers():
    torch.manual_seed(0)
    parent = TwoAdapterParent(std=0.3).double()
    inputs = {"down": torch.randn(3, 16), "up": torch.randn(3, 8), "phm": torch.randn(3, 16)}
    inputs = {k: v.double() for k, v in inputs.items()}
    A = parent.shared_phm_rules.A

    def loss_of(name):
        return (getattr(parent, name)(inputs[name]) ** 2).sum()

    alone = []
    for name in inputs:
        A.grad = None
        loss_of(name).backward()
        alone.append(A.grad.clone())
    A.grad = None
    sum(loss_of(name) for name in inputs).backward()
    assert all(g.abs().sum() > 0 for g in alone)
    assert torch.allclose(A.grad, sum(alone))


def test_shared_rules_follow_double_and_load_state_dict():
    torch.manual_seed(0)
    source = TwoAdapterParent(std=0.3)
    target = TwoAdapterParent(std=0.3)
    target.load_state_dict(source.state_dict())
    x = torch.randn(2, 16)
    assert torch.equal(target(x), source(x))

    target.double()
    assert target.down.rules().dtype == torch.float64
    assert target(x.double()).dtype == torch.float64
    assert torch.allclose(target(x.double()), source(x).double(), atol=1e-6)


def test_shared_rules_survive_deepcopy():
    parent = TwoAdapterParent()
    clone = copy.deepcopy(parent)
    assert clone.down.rules() is clone.shared_phm_rules.A
    assert clone.down.rules() is not parent.shared_phm_rules.A


def test_shared_rules_found_when_conversion_replaces_the_parameter_object():
    previous = torch.__future__.get_overwrite_module_params_on_conversion()
    torch.__future__.set_overwrite_module_params_on_conversion(True)
    try:
        parent = TwoAdapterParent()
        old_parameter = parent.shared_phm_rules.A
        parent.double()
        assert parent.shared_phm_rules.A is not old_parameter
        assert parent.up.rules() is parent.shared_phm_rules.A
        assert parent(torch.randn(2, 16, dtype=torch.float64)).dtype == torch.float64
    finally:
        torch.__future__.set_overwrite_module_params_on_conversion(previous)


# --- validation ---------------------------------------------------------------------------


def test_bad_n_raises_one_line_value_error():
    with pytest.raises(ValueError, match=r"n=5 does not divide in_features=768; choose n among"):
        PHMLinear(768, 24, n=5)
    with pytest.raises(ValueError, match=r"n=5 does not divide out_features=24"):
        LowRankPHMLinear(770, 24, n=5)
    with pytest.raises(ValueError, match="positive integer"):
        LowRankPHMLinear(768, 24, n=0)


def test_bottleneck_smaller_than_n_raises():
    with pytest.raises(ValueError, match=r"bottleneck size 8 .* smaller than n=12"):
        LowRankPHMLinear(768, 8, n=12)
    with pytest.raises(ValueError, match=r"bottleneck size 8 .* smaller than n=12"):
        PHMLinear(8, 768, n=12)


def test_bad_rank_mode_and_shared_rules_raise():
    with pytest.raises(ValueError, match="rank"):
        LowRankPHMLinear(768, 24, n=4, rank=0)
    with pytest.raises(ValueError, match="mode"):
        LowRankPHMLinear(768, 24, n=4, mode="fast")
    with pytest.raises(ValueError, match="n=8 but this layer has n=4"):
        LowRankPHMLinear(768, 24, n=4, shared_A=SharedPHMRules(8))


# --- Walsh-Hadamard and Fastfood -------------------------------------------------------------


def sylvester_hadamard(length: int) -> torch.Tensor:
    H = torch.ones(1, 1, dtype=torch.float64)
    while H.shape[0] < length:
        H = torch.cat([torch.cat([H, H], 1), torch.cat([H, -H], 1)], 0)
    return H


@pytest.mark.parametrize("length", [1, 2, 8, 64])
def test_fast_walsh_hadamard_matches_sylvester_matrix(length):
    x = torch.randn(3, 2, length, dtype=torch.float64, requires_grad=True)
    y = fast_walsh_hadamard(x)
    assert torch.allclose(y, x @ sylvester_hadamard(length))
    y.sum().backward()  # the gradient of sum(x H) is H 1 (H is symmetric)
    column_sums = sylvester_hadamard(length).sum(1)
    assert torch.allclose(x.grad, column_sums.expand(3, 2, length))


@pytest.mark.parametrize("length", [0, 3, 12])
def test_fast_walsh_hadamard_rejects_non_powers_of_two(length):
    with pytest.raises(ValueError, match="power-of-two"):
        fast_walsh_hadamard(torch.zeros(length))


@pytest.mark.parametrize("output_dim,input_dim", [(100, 7), (64, 64), (5, 40), (1, 1)])
def test_fastfood_equals_its_dense_matrix(output_dim, input_dim):
    projection = FastfoodProjection(output_dim, input_dim, seed=3)
    z = torch.randn(input_dim, dtype=torch.float64)
    P = projection.dense_matrix()
    assert P.shape == (output_dim, input_dim)
    assert torch.allclose(projection(z), P @ z)
    batch = torch.randn(4, input_dim, dtype=torch.float64)
    assert torch.allclose(projection(batch), batch @ P.T)


def test_fastfood_is_reproducible_from_seed_and_keeps_no_state():
    z = torch.randn(30)
    a, b, c = (FastfoodProjection(200, 30, seed=s) for s in (7, 7, 8))
    assert torch.equal(a(z), b(z))
    assert not torch.allclose(a(z), c(z))
    assert len(a.state_dict()) == 0
    assert dict(a.named_buffers()).keys() == {
        "binary_diagonal",
        "gather_index",
        "gaussian_diagonal",
        "scaling_diagonal",
    }
    assert a.binary_diagonal.dtype == torch.int8 and a.gather_index.dtype == torch.int32
    assert a.gaussian_diagonal.dtype == a.scaling_diagonal.dtype == torch.float32
    assert a.padded_dim == 256
    # Only what the projection uses: d signs, permutation mod d2 (d2 = 32 >= d = 30), L Gaussians, D scalings.
    assert a.binary_diagonal.numel() == 30 and a.scaling_diagonal.numel() == 200
    assert a.gather_index.numel() == a.gaussian_diagonal.numel() == 256 and int(a.gather_index.max()) < 32


def test_fastfood_is_differentiable_in_z():
    projection = FastfoodProjection(50, 20, seed=0)
    z = torch.randn(20, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(50, dtype=torch.float64)
    (projection(z) * weights).sum().backward()
    assert torch.allclose(z.grad, projection.dense_matrix().T @ weights)


def test_fastfood_output_scale_is_norm_squared_over_padded_dim():
    projection = FastfoodProjection(3000, 500, seed=0)  # padded to L = 4096
    z = torch.randn(500, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ratio = projection(z).pow(2).mean() / (z.pow(2).sum() / projection.padded_dim)
    assert 0.8 < ratio.item() < 1.2
    # Full L x L rows have unit norm on average: squared norms of the kept columns average d / L.
    row_norms = projection.dense_matrix().pow(2).sum(1).mean()
    assert abs(row_norms.item() / (500 / 4096) - 1) < 0.1
