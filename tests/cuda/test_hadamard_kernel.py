"""The CUDA Walsh-Hadamard kernel of the `cuda-fwht` extra (Dao-AILab's fast-hadamard-transform) gives what the
pure-torch passes give, forward and backward, on every transform length Intrinsic-SAID's Fastfood projections use
(the demo model at the tests' d', T5-small and T5-base at Table 3's d' 1,400 and the default 20,000) and in every
projection of those models: the rows up to the kernel's 2^15 in one call, longer ones in two
(`compacter_pl.layers.fastfood.cuda.cuda_rows`).

The CUDA case needs a GPU and the extra; the CPU case puts a stand-in with the kernel's contract (the unnormalised
transform of the last dimension, at most 2^15 long, times `scale`) where the kernel would be, on the lengths up to
2^18, which proves the bodies and the two-call split where no GPU is.
"""

import functools
import math

import pytest
import torch

import compacter_pl.layers.fastfood.cuda as fwht
import compacter_pl.layers.fastfood.hadamard as hadamard
import compacter_pl.layers.fastfood.projection as projection
from compacter_pl.architectures import build_t5
from compacter_pl.layers.fastfood import FastfoodProjection, FastfoodWorkspace, fast_walsh_hadamard
from compacter_pl.layers.fastfood.factors import next_power_of_two
from compacter_pl.methods import IntrinsicSAID
from compacter_pl.tools.bench.rows import TABLE3_SETTINGS
from tests.helpers import DEMO_MODEL, on_cuda, tiny_method

CPU_LONGEST = 2**18  # the stand-in's lengths and projections: up to here (T5-small's, split into two calls)
KERNEL_LONGEST = 2**15  # the kernel's documented limit (cuda._CUDA_MAX_LENGTH)


def said_projections() -> list[tuple[int, int]]:
    """(D, d) of every Fastfood projection Intrinsic-SAID builds on the models and d' above (on the meta device)."""
    table3 = IntrinsicSAID(intrinsic_dim=TABLE3_SETTINGS["intrinsic_said"]["intrinsic_dim"])
    shapes = set()
    for model, method in [
        (DEMO_MODEL, tiny_method("intrinsic_said")),
        ("t5-small", table3),
        ("t5-small", IntrinsicSAID()),
        ("t5-base", table3),
        ("t5-base", IntrinsicSAID()),
    ]:
        t5 = build_t5(model)
        method.apply(t5)
        state = t5.intrinsic_said
        shapes |= {(math.prod(shape), state.z.numel()) for shape in state.shapes}
    return sorted(shapes)


def transform_lengths(shapes: list[tuple[int, int]]) -> list[int]:
    """The lengths the projections transform: the padded length of each and the table of its input."""
    return sorted(
        {next_power_of_two(max(big, small)) for big, small in shapes}
        | {next_power_of_two(small) for _, small in shapes}
    )


def stand_in_kernel(x: torch.Tensor, scale: float) -> torch.Tensor:
    """The kernel's contract on any device: H of the last dimension (Sylvester order), at most 2^15, times scale."""
    length = x.shape[-1]
    assert length <= KERNEL_LONGEST and length & (length - 1) == 0, length
    rows = x.reshape(-1, length)
    half = 1
    while half < length:  # the butterflies: (a, b) -> (a + b, a - b) on blocks of 2 * half
        pairs = rows.view(rows.shape[0], length // (2 * half), 2, half)
        rows = torch.stack([pairs[:, :, 0] + pairs[:, :, 1], pairs[:, :, 0] - pairs[:, :, 1]], dim=2).view(-1, length)
        half *= 2
    return (rows * scale).view(x.shape)


@pytest.fixture(
    params=[on_cuda("cuda", id="cuda"), pytest.param("cpu", id="cpu-stand-in")],
)
def kernel(request, monkeypatch) -> tuple[str, list[int]]:
    """(device, the lengths the kernel was called on): the kernel in place, counted."""
    device = request.param
    if device == "cuda":
        if not fwht.cuda_kernel_available():
            pytest.skip("the cuda-fwht extra (fast-hadamard-transform) is not installed")
        real = fwht._cuda_hadamard
    else:
        real = stand_in_kernel

        def use_on_cpu(x: torch.Tensor) -> bool:  # the kernel's own test, less `x.is_cuda`
            return fwht._cuda_hadamard is not None and x.dtype in fwht._CUDA_DTYPES

        monkeypatch.setattr(hadamard, "use_cuda_kernel", use_on_cpu)
        monkeypatch.setattr(projection, "use_cuda_kernel", use_on_cpu)
    calls: list[int] = []

    def counted(x: torch.Tensor, scale: float) -> torch.Tensor:
        calls.append(x.shape[-1])
        return real(x, scale)

    monkeypatch.setattr(fwht, "_cuda_hadamard", counted)
    return device, calls


@pytest.fixture(scope="module")
def shapes() -> list[tuple[int, int]]:
    return said_projections()


def with_and_without_kernel(monkeypatch, calls: list[int], run, *args):
    """run(*args) with the kernel, then on the pure-torch passes (no kernel, as where the extra is not installed):
    both results and the lengths the kernel was called on."""
    calls.clear()
    with_kernel = run(*args)
    kernel_lengths = set(calls)
    assert kernel_lengths, "the kernel ran"
    calls.clear()
    with monkeypatch.context() as patch:
        patch.setattr(fwht, "_cuda_hadamard", None)
        without = run(*args)
    assert not calls, "the pure-torch passes ran without the kernel"
    return with_kernel, without, kernel_lengths


def forward_and_backward(function, x: torch.Tensor, g: torch.Tensor):
    """function(x) and the gradient of <function(x), g> with respect to x."""
    leaf = x.clone().requires_grad_(True)
    y = function(leaf)
    y.backward(g)
    return y.detach(), leaf.grad


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual.double() - expected.double()).abs().max() / expected.double().abs().max())


def test_the_projections_cover_the_lengths_of_both_kernel_paths(shapes):
    lengths = transform_lengths(shapes)
    assert min(lengths) <= KERNEL_LONGEST < CPU_LONGEST < max(lengths) == 2**25, lengths  # T5-base's embedding


def test_walsh_hadamard_with_the_kernel_equals_the_torch_passes(kernel, shapes, monkeypatch):
    device, calls = kernel
    lengths = [n for n in transform_lengths(shapes) if device == "cuda" or n <= CPU_LONGEST]
    errors, kernel_lengths = {}, set()
    for length in lengths:
        x, g = torch.randn(2, 3, length, device=device), torch.randn(2, 3, length, device=device)
        (y, grad), (y_torch, grad_torch), called = with_and_without_kernel(
            monkeypatch, calls, forward_and_backward, fast_walsh_hadamard, x, g
        )
        kernel_lengths |= called
        errors[length] = max(relative_error(y, y_torch), relative_error(grad, grad_torch))
    assert max(errors.values()) < 1e-5, errors
    expected = {n for n in lengths if n <= KERNEL_LONGEST} | {
        part for n in lengths if n > KERNEL_LONGEST for part in (KERNEL_LONGEST, n // KERNEL_LONGEST)
    }
    assert kernel_lengths == expected, "the kernel ran on every length, longer ones in two calls"


def test_said_projections_with_the_kernel_equal_the_torch_passes(kernel, shapes, monkeypatch):
    device, calls = kernel
    errors = {}
    for big, small in shapes:
        if device == "cpu" and next_power_of_two(max(big, small)) > CPU_LONGEST:
            continue
        fastfood = FastfoodProjection(big, small, seed=0).to(device)
        for rows in (1, 3):  # one tensor, and a chunk of tensors that share the projection
            z, g = torch.randn(rows, small, device=device), torch.randn(rows, big, device=device)
            (y, grad), (y_torch, grad_torch), _ = with_and_without_kernel(
                monkeypatch,
                calls,
                forward_and_backward,
                functools.partial(fastfood, workspace=FastfoodWorkspace()),
                z,
                g,
            )
            errors[(big, small, rows)] = max(relative_error(y, y_torch), relative_error(grad, grad_torch))
    assert errors and max(errors.values()) < 1e-5, errors
