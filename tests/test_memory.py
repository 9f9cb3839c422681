"""adaslim_hf.memory: freed memory is kept and reused (glibc), and the switch turns it off."""

import subprocess
import sys

import pytest

from adaslim_hf.memory import ENVIRONMENT_SWITCH, reuse_freed_memory

# Fresh page faults of writing a 64 MB tensor, freed and written again six times (as a training loop does at
# every step); the fewest of the last four. A fault is counted per 4 KiB page: 16,384 when the memory went
# back to the system, none once the heap keeps it (glibc may take new pages for the first few).
FAULTS_OF_REPEATED_TENSOR = """
import resource, sys, torch
from adaslim_hf.memory import reuse_freed_memory
applied = reuse_freed_memory() if sys.argv[1] == "reuse" else False
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
counts = []
for _ in range(6):
    before = faults()
    tensor = torch.ones(16 * 2**20)
    counts.append(faults() - before)
    del tensor
print(applied, min(counts[2:]))
"""


def _faults(mode: str) -> tuple[bool, int]:
    result = subprocess.run([sys.executable, "-c", FAULTS_OF_REPEATED_TENSOR, mode], capture_output=True, text=True,
                            check=True, env={"PATH": "/usr/bin:/bin", ENVIRONMENT_SWITCH: "1"})
    applied, faults = result.stdout.split()
    return applied == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_freed_memory_is_reused_instead_of_faulting_in_again():
    applied, kept = _faults("reuse")
    _, returned = _faults("system")
    assert applied
    assert returned > 10_000, f"expected the system allocator to fault the 64 MB in again, saw {returned} faults"
    assert kept < 1_000, f"expected the kept heap to serve the repeated tensor, saw {kept} page faults"


def test_the_environment_switch_turns_it_off(monkeypatch):
    monkeypatch.setenv(ENVIRONMENT_SWITCH, "0")
    assert reuse_freed_memory() is False
