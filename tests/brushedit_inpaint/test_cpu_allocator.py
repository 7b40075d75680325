"""`keep_freed_memory`, the CPU allocator lever: freed tensors are reused without new page faults."""

from __future__ import annotations

import subprocess
import sys

import pytest

from brushedit_inpaint.speed import optimize_for_inference

# A "step" that allocates and frees tensors of 64 MiB (over glibc's largest mmap threshold), 64 MiB and 4 MiB, as a
# denoising step does with its activations; the minor page faults of the last two of eight steps. Each fresh mmap faults
# in all of its pages (16384 per 64 MiB); memory that malloc kept is reused without a fault once the heap has settled.
_PROBE = """
import resource, sys, torch
from brushedit_inpaint.speed import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def step():
    x = torch.ones(16 * 2**20)
    y = x * 2
    return float(y[0] + (torch.ones(2**20) + 1)[0])
for _ in range(6):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
step(), step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_kept_memory_is_reused_without_page_faults():
    assert _faults("default") > 2 * 16384  # every 64 MiB block mmapped and faulted in anew
    assert _faults("keep") < 1000


def test_unknown_cpu_allocator_is_refused():
    with pytest.raises(ValueError, match="`cpu_allocator` must be one of"):
        optimize_for_inference(object(), cpu_allocator="jemalloc")
