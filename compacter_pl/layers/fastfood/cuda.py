"""The optional CUDA kernel of Dao-AILab's ``fast-hadamard-transform`` (``pip install compacter-pl[cuda-fwht]``): CUDA
tensors use it for the transforms where it is installed; the pure-torch passes (`hadamard`) are the default and the
reference."""

from __future__ import annotations

import torch
from torch import Tensor


def _load_cuda_kernel():
    try:
        from fast_hadamard_transform import hadamard_transform  # Dao-AILab's CUDA kernel (optional extra)
    except (ImportError, OSError, RuntimeError):  # not installed, or built for another torch / CUDA (an undefined
        # symbol, a missing CUDA library): the pure-torch path is used
        return None
    return hadamard_transform


_cuda_hadamard = _load_cuda_kernel()
_CUDA_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_CUDA_MAX_LENGTH = 2**15  # the kernel's documented limit on the transformed dimension


def cuda_kernel_available() -> bool:
    """Whether `fast-hadamard-transform` is importable (the CUDA path is then taken for CUDA tensors)."""
    return _cuda_hadamard is not None


def use_cuda_kernel(x: Tensor) -> bool:
    return _cuda_hadamard is not None and x.is_cuda and x.dtype in _CUDA_DTYPES


def cuda_rows(x: Tensor) -> Tensor:
    """H_L of each row of x (m, L) with the CUDA kernel: H_L = H_a (x) H_b with a, b <= 2^15, so two kernel calls
    on reshaped views (the kernel transforms the last dimension) with a transpose between them."""
    m, length = x.shape
    if length <= _CUDA_MAX_LENGTH:
        return _cuda_hadamard(x, 1.0)
    b = _CUDA_MAX_LENGTH
    a = length // b
    if a > _CUDA_MAX_LENGTH:
        raise ValueError(f"length {length} exceeds the CUDA kernel's reach ({_CUDA_MAX_LENGTH**2})")
    y = _cuda_hadamard(x.reshape(m * a, b), 1.0).view(m, a, b)
    y = _cuda_hadamard(y.transpose(1, 2).reshape(m * b, a), 1.0).view(m, b, a)
    return y.transpose(1, 2).reshape(m, length)
