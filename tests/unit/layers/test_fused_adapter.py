"""The fused bottleneck adapter (one autograd function) equals the plain modules' autograd, value and gradient, for
every projection the adapter methods use, with a shared A, without biases, and under bf16 autocast."""

import copy

import pytest
import torch

from compacter_pl.layers import (
    BottleneckAdapter,
    LowRankLinear,
    LowRankPHMLinear,
    PHMLinear,
    SharedPHMRules,
    houlsby_linear,
)
from compacter_pl.layers.fused_adapter import two_factors

SHARED = SharedPHMRules(4, std=0.5)

PROJECTIONS = {
    "lphm-factored": lambda i, o: LowRankPHMLinear(i, o, n=4, rank=1, a_init_std=0.5, mode="factored"),
    "lphm-rank-2": lambda i, o: LowRankPHMLinear(i, o, n=4, rank=2, a_init_std=0.5, mode="factored"),
    "lphm-materialized": lambda i, o: LowRankPHMLinear(i, o, n=4, a_init_std=0.5, mode="materialized"),
    "lphm-shared-no-bias": lambda i, o: LowRankPHMLinear(i, o, n=4, shared_A=SHARED, bias=False),
    "phm": lambda i, o: PHMLinear(i, o, n=4),
    "lowrank": lambda i, o: LowRankLinear(i, o),
    "linear": houlsby_linear,
}


def perturbed_adapter(make, activation="gelu_new") -> BottleneckAdapter:  # the methods' default
    torch.manual_seed(0)
    adapter = BottleneckAdapter(make(32, 8), make(8, 32), activation)
    with torch.no_grad():  # away from the near-identity init, so every gradient is far from zero
        for parameter in adapter.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.3)
    return adapter


def value_and_grads(adapter, y, grad, fused: bool):
    adapter.zero_grad(set_to_none=True)
    SHARED.zero_grad(set_to_none=True)
    y = y.detach().requires_grad_()
    out = adapter(y) if fused else y + adapter.up(adapter.activation(adapter.down(y)))
    out.backward(grad)
    grads = {name: p.grad.clone() for name, p in adapter.named_parameters()}
    if SHARED.A.grad is not None:
        grads["shared A"] = SHARED.A.grad.clone()
    return out.detach(), y.grad, grads


@pytest.mark.parametrize("activation", ["gelu_new", "gelu", "relu"])  # the authors', the exact, and a kink
@pytest.mark.parametrize("name", list(PROJECTIONS))
def test_fused_adapter_equals_autograd_of_the_modules(name, activation):
    adapter = perturbed_adapter(PROJECTIONS[name], activation).double()
    SHARED.double()
    assert two_factors(adapter.down, 15) is not None and two_factors(adapter.up, 15) is not None
    y, grad = torch.randn(3, 5, 32, dtype=torch.double), torch.randn(3, 5, 32, dtype=torch.double)
    out, grad_y, grads = value_and_grads(adapter, y, grad, fused=True)
    expected_out, expected_grad_y, expected_grads = value_and_grads(adapter, y, grad, fused=False)
    assert torch.allclose(out, expected_out, atol=1e-10)
    assert torch.allclose(grad_y, expected_grad_y, atol=1e-10)
    assert grads.keys() == expected_grads.keys() and len(grads) >= 4
    for key, value in grads.items():
        assert torch.allclose(value, expected_grads[key], atol=1e-10), key
    SHARED.float()


def test_fused_adapter_under_bf16_autocast_keeps_dtypes_and_matches():
    adapter = perturbed_adapter(PROJECTIONS["lphm-factored"])
    y, grad = torch.randn(2, 6, 32).bfloat16(), torch.ones(2, 6, 32).bfloat16()
    truth, _, true_grads = value_and_grads(copy.deepcopy(adapter).double(), y.double(), grad.double(), fused=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _, grads = value_and_grads(adapter, y, grad, fused=True)
        expected, _, _ = value_and_grads(adapter, y, grad, fused=False)
    assert out.dtype == torch.bfloat16 and all(g.dtype == torch.float32 for g in grads.values())
    # bf16 rounding grows with the values' size, so each is compared with the float64 result relative to its
    # largest entry; the fused output is no further from it than the modules' own autocast output.
    fused_error, module_error = ((v.double() - truth).abs().max() for v in (out, expected))
    assert fused_error <= 0.01 * truth.abs().max() and fused_error <= module_error
    assert grads.keys() == true_grads.keys()
    for key, value in grads.items():
        assert (value.double() - true_grads[key]).abs().max() <= 0.02 * true_grads[key].abs().max(), key


def test_a_projection_without_two_factors_takes_the_module_path():
    adapter = BottleneckAdapter(houlsby_linear(32, 8), torch.nn.Sequential(houlsby_linear(8, 32)), "gelu")
    assert two_factors(adapter.up, 4) is None
    y = torch.randn(4, 32)
    assert torch.allclose(adapter(y), y + adapter.up(adapter.activation(adapter.down(y))), atol=1e-6)
