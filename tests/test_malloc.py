"""glibc malloc tuning: set once, skipped when the process tunes malloc itself, and it stops the
page faults of a streaming allocation pattern (counted in a fresh interpreter)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

from ngio_async import _malloc

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="glibc only",
)

# A window of 16 blocks of 1 MiB, allocated, written and freed 40 times (a tile stream's pattern).
_CHILD = """
import importlib.util, json, resource, sys
import numpy as np
spec = importlib.util.spec_from_file_location("_malloc", sys.argv[1])  # no package import: fast
_malloc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(_malloc)
applied = _malloc.tune_malloc()
again = _malloc.tune_malloc()

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

for _ in range(3):  # warm up numpy and the allocator
    blocks = [np.ones(1 << 20, dtype=np.uint8) for _ in range(16)]
    del blocks
before = faults()
for _ in range(40):
    blocks = [np.ones(1 << 20, dtype=np.uint8) for _ in range(16)]
    del blocks
print(json.dumps({"applied": applied, "again": again, "faults": faults() - before}))
"""


def _run(**env: str) -> dict[str, object]:
    clean = {
        k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")
    }
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, _malloc.__file__],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_tuned_stream_pattern_stops_faulting() -> None:
    tuned = _run()
    plain = _run(NGIO_ASYNC_MALLOC_TUNING="0")
    assert tuned["applied"] is True and tuned["again"] is True
    assert plain["applied"] is False
    # untuned: 16 MiB returned to the kernel and faulted back in 40 times (~160,000 faults)
    assert isinstance(plain["faults"], int) and plain["faults"] > 40 * 1000
    assert isinstance(tuned["faults"], int) and tuned["faults"] < plain["faults"] // 20


@pytest.mark.parametrize(
    "env", [{"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, {"MALLOC_ARENA_MAX": "2"},
            {"NGIO_ASYNC_MALLOC_TUNING": "off"}],
)  # fmt: skip
def test_left_alone_when_the_process_decides(env: dict[str, str]) -> None:
    assert _run(**env)["applied"] is False


def test_applied_when_a_dataset_makes_its_decode_threads(tmp_path: Path) -> None:
    code = (
        "import sys, numpy as np, ngio_async\n"
        "from ngio_async import _malloc\n"
        "assert _malloc._result is None\n"  # importing the package changes nothing
        "ds = ngio_async.create(sys.argv[1], shape=(8, 8), dtype='uint8', axes='yx')\n"
        "print(_malloc._result)\n"
    )
    clean = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES" and "MALLOC_" not in k}
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "a.zarr")],
        env=clean,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "True"
