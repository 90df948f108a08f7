"""Builds the `cuda-fwht` extra's kernel (Dao-AILab's fast-hadamard-transform) from its source, for this machine's
GPU only, where pip cannot install it: PyPI's sdist holds no CUDA source and its setup.py fetches a prebuilt wheel
from GitHub, then compiles for every architecture (issue 29).

    python3 tools/build_fwht.py SRC OUT     # SRC: csrc/ and fast_hadamard_transform/ of a checkout (gpu_wheels.sh
                                            # --fwht-src copies them to .whl/fast-hadamard-transform)

With OUT on PYTHONPATH, `import fast_hadamard_transform` works and Intrinsic-SAID's Fastfood transforms use the
kernel on CUDA tensors (`compacter_pl.layers.fastfood.cuda`). The compiler flags are the package's own; the
architecture is the GPU's. Ends by transforming one batch with the built kernel against H built densely.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

CHECK = """
import torch
from fast_hadamard_transform import hadamard_transform
from compacter_pl.layers.fastfood import hadamard_matrix
x = torch.randn(4, 1024, device="cuda")
error = (hadamard_transform(x, 1.0) - x @ hadamard_matrix(1024, device="cuda")).abs().max().item()
assert error < 1e-2, error
print(f"fast_hadamard_transform built and checked on {torch.cuda.get_device_name()} (max error {error:.1e})")
"""

NVCC_FLAGS = [  # as the package's setup.py compiles it, less its list of architectures
    "-O3",
    "-U__CUDA_NO_HALF_OPERATORS__",
    "-U__CUDA_NO_HALF_CONVERSIONS__",
    "-U__CUDA_NO_BFLOAT16_OPERATORS__",
    "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
    "-U__CUDA_NO_BFLOAT162_OPERATORS__",
    "-U__CUDA_NO_BFLOAT162_CONVERSIONS__",
    "--expt-relaxed-constexpr",
    "--expt-extended-lambda",
    "--use_fast_math",
    "-lineinfo",
]


def build(source: Path, out: Path) -> Path:
    import torch
    from torch.utils.cpp_extension import load

    if not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device: the kernel is built for the GPU of this machine")
    major, minor = torch.cuda.get_device_capability()
    os.environ["TORCH_CUDA_ARCH_LIST"] = f"{major}.{minor}"  # this GPU's architecture only
    os.environ.setdefault("MAX_JOBS", str(os.cpu_count() or 4))
    csrc = source / "csrc"
    out.mkdir(parents=True, exist_ok=True)
    build_dir = out / "build"
    build_dir.mkdir(exist_ok=True)
    started = time.monotonic()
    load(
        name="fast_hadamard_transform_cuda",
        sources=[str(csrc / "fast_hadamard_transform.cpp"), str(csrc / "fast_hadamard_transform_cuda.cu")],
        extra_cflags=["-O3"],
        extra_cuda_cflags=NVCC_FLAGS,
        extra_include_paths=[str(csrc)],
        build_directory=str(build_dir),
        verbose=True,
    )
    library = next(build_dir.glob("fast_hadamard_transform_cuda*.so"))
    shutil.copy2(library, out / library.name)
    shutil.copytree(source / "fast_hadamard_transform", out / "fast_hadamard_transform", dirs_exist_ok=True)
    print(f"built {out / library.name} for sm_{major}{minor} in {time.monotonic() - started:.0f} s")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] in ("-h", "--help"):
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    source, out = Path(argv[0]), Path(argv[1])
    missing = [
        p for p in ("csrc/fast_hadamard_transform_cuda.cu", "fast_hadamard_transform") if not (source / p).exists()
    ]
    if missing:
        print(f"error: {source} has no {missing[0]} (tools/gpu_wheels.sh --fwht-src copies it)", file=sys.stderr)
        return 1
    build(source, out)
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(out), root, os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-c", CHECK], env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
