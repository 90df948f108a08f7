"""Tests for the fast Fastfood projection (compacter_pl/layers/fastfood/): exact against the dense S H G Pi H B and
against the pure-autograd oracle (fastfood_reference.py, beside this file), its own backward checked by gradcheck,
and the two versions of the random stream pinned (version 1 bit-identical to the original code)."""

import copy
import hashlib
import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from compacter_pl.layers.fastfood import (
    FastfoodFunction,
    FastfoodProjection,
    FastfoodWorkspace,
    HadamardPlan,
    draw_fastfood_factors,
    fast_walsh_hadamard,
    hadamard_matrix,
    pruned_rows,
    truncated_rows,
    uniform_permutation,
)
from tests.unit.layers.fastfood_reference import reference_fastfood, reference_walsh_hadamard

SIZES = [(100, 7), (64, 64), (5, 40), (1, 1), (768, 1118), (3000, 500), (70000, 300)]


def digest(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.contiguous().numpy().tobytes()).hexdigest()[:16]


def buffers_of(length: int, n: int, dtype=torch.float64):
    return torch.empty(length * n, dtype=dtype), torch.empty(length * n, dtype=dtype)


@pytest.mark.parametrize("length,keep", [(1, 1), (2, 1), (16, 9), (64, 64), (1024, 577), (2**12, 2**11 + 3)])
def test_truncated_and_pruned_transforms_are_h_and_its_transpose(length, keep):
    plan = HadamardPlan(length, keep)
    H = hadamard_matrix(length, torch.float64)
    x = torch.randn(3, length, dtype=torch.float64)
    y = truncated_rows(x.clone(), plan, buffers_of(length, 3))
    assert y.shape == (3, plan.kept)
    assert torch.allclose(y[:, :keep], (x @ H)[:, :keep])
    u = torch.zeros(3, plan.kept, dtype=torch.float64)
    u[:, :keep] = torch.randn(3, keep, dtype=torch.float64)
    padded = torch.zeros(3, length, dtype=torch.float64)
    padded[:, :keep] = u[:, :keep]
    assert torch.allclose(pruned_rows(u.clone(), plan, buffers_of(length, 3)), padded @ H)


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("output_dim,input_dim", SIZES)
def test_fastfood_is_s_h_g_pi_h_b_as_dense_matrices(version, output_dim, input_dim):
    if output_dim * input_dim > 10**6:
        pytest.skip("dense matrices too large")
    projection = FastfoodProjection(output_dim, input_dim, seed=3, version=version)
    f = projection.factors()
    length = projection.padded_dim
    H = hadamard_matrix(length, torch.float64)
    B = torch.zeros(length, dtype=torch.float64)
    B[:input_dim] = f["signs"][:input_dim].double()  # beyond d, B multiplies the zero padding of z
    Pi = torch.zeros(length, length, dtype=torch.float64)
    Pi[torch.arange(length), f["permutation"].long()] = 1.0
    S = torch.zeros(length, dtype=torch.float64)
    S[:output_dim] = f["scaling"][:output_dim].double()  # beyond D, S scales outputs that are dropped
    dense = torch.diag(S) @ H @ torch.diag(f["gaussian"].double()) @ Pi @ H @ torch.diag(B)
    assert torch.allclose(projection.dense_matrix(), dense[:output_dim, :input_dim], atol=1e-12)


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("output_dim,input_dim", SIZES)
@pytest.mark.parametrize("rows", [1, 3])
def test_forward_and_backward_equal_the_pure_autograd_oracle(version, output_dim, input_dim, rows):
    projection = FastfoodProjection(output_dim, input_dim, seed=11, version=version)
    f = projection.factors()
    workspace = FastfoodWorkspace()
    for space in (None, workspace, workspace):  # fresh buffers, then a workspace, reused
        z = torch.randn(rows, input_dim, dtype=torch.float64, requires_grad=True)
        oracle_z = z.detach().clone().requires_grad_(True)
        y = projection(z, space)
        expected = reference_fastfood(oracle_z, f["signs"], f["permutation"], f["gaussian"], f["scaling"], output_dim)
        assert torch.allclose(y, expected, rtol=1e-10, atol=1e-12)
        g = torch.randn_like(expected)
        y.backward(g)
        expected.backward(g)
        assert torch.allclose(z.grad, oracle_z.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("output_dim,input_dim", [(100, 7), (5, 40), (600, 12)])  # 600: lead pass of 10 rows
def test_gradcheck_of_the_autograd_function(output_dim, input_dim):
    projection = FastfoodProjection(output_dim, input_dim, seed=5)
    z = torch.randn(2, input_dim, dtype=torch.float64, requires_grad=True)
    fast = output_dim > 100  # the full check perturbs every input and reads every output: slow at that size
    assert torch.autograd.gradcheck(lambda v: FastfoodFunction.apply(v, projection, None), (z,), fast_mode=fast)
    assert torch.autograd.gradcheck(
        lambda v: FastfoodFunction.apply(v, projection, FastfoodWorkspace()), (z,), fast_mode=fast
    )


def test_float32_is_within_rounding_of_float64_and_autocast_does_not_round_it():
    projection = FastfoodProjection(70000, 300, seed=1)
    z = torch.randn(2, 300)
    exact = projection(z.double())
    y = projection(z)
    assert y.dtype == torch.float32
    assert ((y.double() - exact).abs().max() / exact.abs().max()).item() < 1e-5
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the passes are matmuls: they must not run in bf16
        autocast = projection(z)
    assert autocast.dtype == torch.float32 and torch.equal(autocast, y)


def test_walsh_hadamard_equals_the_butterfly_oracle_and_is_its_own_gradient():
    x = torch.randn(2, 3, 2**12, dtype=torch.float64, requires_grad=True)
    y = fast_walsh_hadamard(x)
    assert torch.allclose(y, reference_walsh_hadamard(x.detach()))
    assert torch.autograd.gradcheck(fast_walsh_hadamard, (torch.randn(2, 64, dtype=torch.float64, requires_grad=True),))


def test_version_1_is_the_original_stream_bit_for_bit():
    # Digests of the buffers the original implementation (before issue 16) built for (70000, 300, seed 7): its
    # B, Pi mod 512, G and the first D entries of S.
    projection = FastfoodProjection(70000, 300, seed=7, version=1)
    assert digest(projection.binary_diagonal) == "c0c0fa0e7840cf1a"
    assert digest(projection.gather_index) == "b0c58d8e6f369c1e"
    assert digest(projection.gaussian_diagonal) == "270d430900369697"
    assert digest(projection.scaling_diagonal) == "7c35f8687d10394c"
    full = draw_fastfood_factors(200, 30, 7, version=1)  # and every full factor, at L = 256
    assert [digest(full[k]) for k in ("signs", "permutation", "gaussian", "scaling")] == [
        "1940e00bc7bf4937",
        "4d72dd6de2a51980",
        "0fdb5d7b094d09aa",
        "763ce11dff4a3382",
    ]


def test_version_2_stream_is_pinned():
    # A change here means a library changed its random stream: version-2 projections would no longer rebuild.
    projection = FastfoodProjection(70000, 300, seed=7, version=2)
    assert [digest(b) for _, b in projection.named_buffers()] == [
        "d44376e7e854b071",
        "04e2d21eaaa75642",
        "6a637226f207fa4d",
        "820d31b1c2283d5d",
    ]
    assert not torch.equal(projection.gaussian_diagonal, FastfoodProjection(70000, 300, 7, 1).gaussian_diagonal)


def test_uniform_permutation_is_a_permutation_and_independent_of_threads():
    sequence = np.random.SeedSequence(3)
    serial = uniform_permutation(sequence, 2**19)
    with ThreadPoolExecutor(3) as pool:
        threaded = uniform_permutation(sequence, 2**19, pool)
    assert np.array_equal(serial, threaded)
    assert np.array_equal(np.sort(serial), np.arange(2**19))
    # Uniform: entry 0 lands anywhere; over 400 seeds its position is spread over the 8 eighths.
    small = [uniform_permutation(np.random.SeedSequence(s), 2**17)[0] >> 14 for s in range(400)]
    assert len(set(small)) == 8


def test_scaling_and_gaussians_have_their_distributions():
    f = draw_fastfood_factors(2**16, 100, seed=0, version=2)
    g = f["gaussian"].double()
    assert abs(g.mean().item()) < 0.02 and abs(g.std().item() - 1) < 0.02
    chi = f["scaling"].double() * g.norm() * 2**16  # back to the chi(L) draws: mean ~ sqrt(L - 1/2), var ~ 1/2
    assert abs(chi.mean().item() - (2**16 - 0.5) ** 0.5) < 0.02 and abs(chi.var().item() - 0.5) < 0.03
    assert set(f["signs"].tolist()) == {-1, 1}


def test_workspace_is_reused_and_a_nested_borrow_gets_its_own():
    workspace = FastfoodWorkspace()
    with workspace.borrow(100, torch.float32, torch.device("cpu")) as (a, _):
        with workspace.borrow(100, torch.float32, torch.device("cpu")) as (nested, _):
            assert nested.data_ptr() != a.data_ptr()
    with workspace.borrow(50, torch.float32, torch.device("cpu")) as (again, _):
        assert again.data_ptr() == a.data_ptr()
    assert workspace.nbytes() == 2 * 100 * 4
    for twin in (copy.deepcopy(workspace), pickle.loads(pickle.dumps(workspace))):  # a copied model's: empty
        assert twin.nbytes() == 0


def test_unknown_version_is_refused():
    with pytest.raises(ValueError, match="projection version"):
        FastfoodProjection(10, 3, seed=0, version=3)


def test_a_workspace_first_used_under_inference_mode_serves_later_calls():
    """`trainer.test` runs in inference mode; a later no_grad or training forward reuses the same scratch."""
    projection, workspace = FastfoodProjection(300, 7, seed=3), FastfoodWorkspace()
    z = torch.randn(7)
    with torch.inference_mode():
        first = projection(z, workspace)
    with torch.no_grad():
        assert torch.equal(projection(z, workspace), first)
    trained = z.clone().requires_grad_()
    projection(trained, workspace).sum().backward()
    assert trained.grad is not None
