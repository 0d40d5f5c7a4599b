"""Hygiene: requests still in flight when their event loop closes end without a traceback.

obstore's runtime finishes each request with ``loop.call_soon_threadsafe``, from its own thread;
a loop closed without its tasks cancelled (``run_until_complete`` then ``close()``, the older
idiom) made each late end print ``RuntimeError: Event loop is closed``. Run in a child process:
what it prints (and its ``sys.excepthook``) is its own.
"""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

_CHILD = """
import asyncio, os, sys, time
from ngio_async.stores import open_store

root, n = sys.argv[1], 40

async def start():
    store = open_store(root)
    for i in range(n):
        asyncio.get_running_loop().create_task(store.put(f"k{i}", b"x" * 100_000))
    await asyncio.sleep(0)  # the puts are sent, none has finished

loop = asyncio.new_event_loop()
loop.run_until_complete(start())
loop.close()  # the puts' tasks were neither awaited nor cancelled
deadline = time.monotonic() + 10
while len(os.listdir(root)) < n and time.monotonic() < deadline:
    time.sleep(0.01)
time.sleep(0.2)  # after the last file, its completion reaches the closed loop
print("landed", len(os.listdir(root)))
raise RuntimeError("Event loop is closed")  # anyone else's such error is still shown
"""


def test_requests_ending_after_their_loop_closed_print_nothing(tmp_path: Path) -> None:
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert child.stdout.strip() == "landed 40"
    # was one traceback per put, each from base_events' call_soon_threadsafe
    assert "call_soon_threadsafe" not in child.stderr, child.stderr
    assert child.stderr.count("RuntimeError: Event loop is closed") == 1, child.stderr
    assert child.returncode == 1
