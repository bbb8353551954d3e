"""The C++ CPU kernels' sixteen-lane (AVX-512) vector paths, run on a machine without AVX-512.

The kernels compile one vector path, for the instruction set of the machine that builds them (kernels/cpu/vec.h's
`Vec`), so an AVX2 host never runs the AVX-512 one. Here they are built a second time with AVX-512 emulated in
software: SIMDe's headers (Debian's libsimde-dev; .ci/run installs it), and avx512_emulation.h for the intrinsics
SIMDe lacks. The result is checked against the torch reference, as test_cpu_paged_decode_attention.py and
test_cpu_elementwise.py check the native build. Skipped where AVX-512 is native (the ordinary build runs that
path) and where the SIMDe headers are missing. The emulated build is slow code; only its results count.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch

from kernels import reference
from kernels.cpu import build
from tests.kernels.test_cpu_paged_decode_attention import CASES, make_case
from tests.kernels.tolerances import ATTENTION, ELEMENTWISE, assert_close

SIMDE_HEADER = Path("/usr/include/simde/x86/avx512.h")
EMULATION_HEADER = Path(__file__).with_name("avx512_emulation.h")


def _native_avx512() -> bool:
    try:
        return any("avx512f" in line.split() for line in open("/proc/cpuinfo") if line.startswith("flags"))
    except OSError:
        return False


pytestmark = [
    pytest.mark.skipif(_native_avx512(), reason="AVX-512 is native here: the ordinary build runs its vector path"),
    pytest.mark.skipif(not SIMDE_HEADER.exists(), reason="needs SIMDe's headers (apt-get install libsimde-dev)"),
]


@pytest.fixture(scope="module")
def emulated():
    """The kernels built from a copy of kernels/cpu whose sources include avx512_emulation.h before vec.h."""
    from torch.utils import cpp_extension

    name = build.extension_name().replace("tamer_cpu_kernels", "tamer_cpu_kernels_avx512_emulated")
    source_dir = Path(tempfile.gettempdir()) / name  # stable: a second run finds the build cached
    source_dir.mkdir(exist_ok=True)
    kernels_dir = Path(build.__file__).parent
    for file_name in build.SOURCES + build.HEADERS:
        text = (kernels_dir / file_name).read_text()
        text = text.replace('#include "vec.h"', f'#include "{EMULATION_HEADER}"\n#include "vec.h"')
        copy = source_dir / file_name
        if not copy.exists() or copy.read_text() != text:  # an unchanged copy keeps its time: no rebuild
            copy.write_text(text)
    return cpp_extension.load(name=name, sources=[str(source_dir / s) for s in build.SOURCES],
                              extra_cflags=["-O2", "-march=native", "-fopenmp", "-fno-math-errno"],
                              extra_ldflags=["-fopenmp"], verbose=False)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("context_lens, block_size, num_heads, num_kv_heads, head_dim", CASES)
def test_paged_decode_attention(emulated, context_lens, block_size, num_heads, num_kv_heads, head_dim, dtype):
    case, _, _ = make_case(context_lens, block_size, num_heads, num_kv_heads, head_dim, dtype, heads_outer=True)
    out = torch.empty_like(case[0])
    emulated.paged_decode_attention(*case, out)
    assert_close(out, reference.paged_decode_attention(*case), ATTENTION)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("intermediate", [1536, 13, 40])  # whole vectors; a tail alone; vectors and a tail
def test_silu_and_mul(emulated, dtype, intermediate):
    x = (torch.randn(37, 2 * intermediate, generator=torch.Generator().manual_seed(intermediate)) * 6).to(dtype)
    x[0, :5] = torch.tensor([100.0, -100.0, 0.0, 88.5, -90.0])  # exp's clamp at both ends
    x[1, 0] = float("nan")
    out = torch.empty(37, intermediate, dtype=dtype)
    emulated.silu_and_mul(x, out)
    atol, rtol = ELEMENTWISE[dtype]
    torch.testing.assert_close(out, reference.silu_and_mul(x), atol=atol, rtol=rtol, equal_nan=True)  # NaN stays
