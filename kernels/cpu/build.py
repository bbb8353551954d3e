"""Compiles the C++ CPU kernels of this package on first use, once per process, and says whether they can run.

The sources (`*.cpp` beside this file) are built with torch's extension builder, which caches the shared
library under its build directory (TORCH_EXTENSIONS_DIR, default ~/.cache/torch_extensions) and rebuilds only
when a source changes: the first build takes about a minute on two cores, later processes load it at once.
Built with -O3 -march=native (the library is compiled on the machine that runs it) and OpenMP, which
resolves to the OpenMP runtime torch already loaded, so the kernels share torch's threads.
A machine with no C++ compiler (or where the build fails) gets None and a warning naming the cause; callers
fall back to the torch reference.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from pathlib import Path
from types import ModuleType

import torch

log = logging.getLogger("tamer.kernels")

SOURCES = ("bindings.cpp", "paged_decode_attention.cpp", "rms_norm.cpp", "rotary_embedding.cpp", "silu_and_mul.cpp",
           "store_kv_cache.cpp")
HEADERS = ("vec.h",)
KERNEL_DTYPES = (torch.float32, torch.bfloat16)
COMPILE_FLAGS = ["-O3", "-march=native", "-fopenmp", "-fno-math-errno"]


class CpuKernelsUnavailableError(RuntimeError):
    """The C++ CPU kernels could not be built or loaded here."""


def extension_name() -> str:
    """The module's name carries a hash of every source and header, so an edited file always gets a fresh build
    (torch's builder watches the sources it compiles, not the headers they include)."""
    digest = hashlib.sha256()
    for name in SOURCES + HEADERS + (" ".join(COMPILE_FLAGS),):
        path = Path(__file__).with_name(name)
        digest.update(path.read_bytes() if path.suffix else name.encode())
    return f"tamer_cpu_kernels_{digest.hexdigest()[:12]}"


def is_cpu_kernel_dtype(*tensors: torch.Tensor) -> bool:
    """All CPU tensors of one dtype the kernels take (float32 or bfloat16)."""
    dtype = tensors[0].dtype
    if dtype not in KERNEL_DTYPES:
        return False
    for t in tensors:  # a plain loop: this runs several times per layer per step
        if t.dtype != dtype or not t.is_cpu:
            return False
    return True


@functools.cache
def _build() -> ModuleType | Exception:
    try:
        from torch.utils import cpp_extension

        started = time.perf_counter()
        name = extension_name()
        module = cpp_extension.load(
            name=name,
            sources=[str(Path(__file__).with_name(source)) for source in SOURCES],
            extra_cflags=COMPILE_FLAGS,
            extra_ldflags=["-fopenmp"],
            verbose=False,
        )
        log.info("CPU kernels ready (%s) in %.1f s", name, time.perf_counter() - started)
        return module
    except Exception as exc:  # no compiler, no Python headers, a failed build: all mean "use the reference"
        log.warning("the C++ CPU kernels are unavailable, using the torch reference instead: %s",
                    str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc))
        return exc


def cpu_kernels() -> ModuleType:
    """The compiled kernels module (built on the first call); CpuKernelsUnavailableError when it cannot be."""
    built = _build()
    if isinstance(built, Exception):
        raise CpuKernelsUnavailableError(f"the C++ CPU kernels could not be built ({built!r}); install a C++ "
                                         f"compiler (g++) and the Python headers, or use kernel backend "
                                         f"'reference'") from built
    return built


def cpu_kernels_available() -> bool:
    """True when the kernels build and load here (the first call builds them)."""
    return not isinstance(_build(), Exception)
