"""``SyncIterator.close()`` from any thread, at any point of the iteration."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import anyio
import pytest
from images import Spec, write_image
from servers import Faults

import ngio_async
from ngio_async import sync
from ngio_async._errors import ClosedError
from ngio_async._prefetch import prefetch
from ngio_async.sync import Runner

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from pathlib import Path

    from servers import StaticServer

    from ngio_async.images import Tile


@pytest.fixture
def runner() -> Iterator[Runner]:
    r = Runner()
    yield r
    r.close()


class Source:
    """An async generator whose second item never comes (until cancelled)."""

    def __init__(self) -> None:
        self.waiting = threading.Event()
        self.closed = False
        self.cancelled = False

    async def gen(self) -> AsyncIterator[int]:
        try:
            yield 0
            self.waiting.set()
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                self.cancelled = True
                raise
            yield 1  # pragma: no cover
        finally:
            self.closed = True


class Slow:
    """A fetch function for ``prefetch`` that blocks until cancelled, counting what runs."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.started = threading.Event()

    async def __call__(self, item: int) -> int:
        self.in_flight += 1
        try:
            if item > 0:
                self.started.set()
                await anyio.sleep_forever()
            return item
        finally:
            self.in_flight -= 1


def _consume_in_thread(it: sync.SyncIterator[int]) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def consume() -> None:
        try:
            outcome.extend(it)
            outcome.append("end")
        except ClosedError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=consume)
    worker.start()
    return worker, outcome


def _wait(event: threading.Event | Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    done = event.is_set if isinstance(event, threading.Event) else event
    while not done():
        assert time.monotonic() < deadline
        time.sleep(0.002)


def test_close_from_another_thread_cancels_a_waiting_next(runner: Runner) -> None:
    src = Source()
    it = runner.iterate(src.gen())
    worker, outcome = _consume_in_thread(it)
    _wait(src.waiting)
    it.close()  # was: ValueError('generator already executing'), and the consumer hung
    # close() returns once the async generator has been cancelled and closed
    assert src.cancelled
    assert src.closed
    worker.join(10)
    assert not worker.is_alive()
    assert outcome[0] == 0
    assert isinstance(outcome[1], ClosedError)
    assert "closed" in str(outcome[1])
    with pytest.raises(StopIteration):
        next(it)
    it.close()  # twice: nothing more to do
    assert runner.call(anyio.sleep, 0) is None  # the loop is fine


def test_close_from_another_thread_stops_the_prefetching(runner: Runner) -> None:
    f = Slow()
    it = runner.iterate(prefetch(range(100), f, window=4))
    worker, outcome = _consume_in_thread(it)
    _wait(f.started)
    it.close()
    assert f.in_flight == 0  # nothing left running when close() returns
    worker.join(10)
    assert not worker.is_alive()
    assert outcome[:-1] in ([], [0])  # item 0 may not have reached the consumer yet
    # was it waiting in next() or holding item 0: never a normal end
    assert isinstance(outcome[-1], ClosedError)


def test_module_level_iterate_closed_from_another_thread_gives_its_lease_back() -> None:
    src = Source()
    leases = sync._provider.leases
    it = sync.iterate(src.gen())
    worker, outcome = _consume_in_thread(it)
    _wait(src.waiting)
    assert sync._provider.leases == leases + 1
    it.close()
    worker.join(10)
    assert src.closed
    assert isinstance(outcome[-1], ClosedError)
    assert sync._provider.leases == leases


def test_close_from_another_thread_between_items_closes_there(runner: Runner) -> None:
    src = Source()
    it = runner.iterate(src.gen())
    assert next(it) == 0  # the consumer holds an item, no next() in flight
    closer = threading.Thread(target=it.close)
    closer.start()
    closer.join(10)
    assert src.closed  # closed by the closing thread
    with pytest.raises(ClosedError, match="another thread"):  # not a normal end of the loop
        next(it)


def test_close_before_the_first_next_and_after_the_end(runner: Runner) -> None:
    src = Source()
    it = runner.iterate(src.gen())
    it.close()
    it.close()
    with pytest.raises(StopIteration):
        next(it)
    assert not src.closed  # never started: nothing ran

    async def three() -> AsyncIterator[int]:
        for i in range(3):
            yield i

    it2 = runner.iterate(three())
    assert list(it2) == [0, 1, 2]
    it2.close()
    it2.close()
    with pytest.raises(StopIteration):
        next(it2)
    # and from another thread: before the start (then next() says so), after the end
    for target, error in ((runner.iterate(three()), ClosedError), (it2, StopIteration)):
        closer = threading.Thread(target=target.close)
        closer.start()
        closer.join(10)
        assert not closer.is_alive()
        with pytest.raises(error):
            next(target)
    ended = runner.iterate(three())
    assert list(ended) == [0, 1, 2]
    closer = threading.Thread(target=ended.close)
    closer.start()
    closer.join(10)
    with pytest.raises(StopIteration):
        next(ended)


def test_close_from_the_loop_thread_stops_the_consumer(runner: Runner) -> None:
    """A progress callback (run on the loop) closing the loop it reports on."""
    f = Slow()
    holder: list[sync.SyncIterator[int]] = []

    def progress(done: int, total: int | None) -> None:
        if done == 1:
            holder[0].close()  # on the loop thread: must neither raise nor wait

    holder.append(runner.iterate(prefetch(range(100), f, window=4, on_item=progress)))
    got: list[int] = []
    with pytest.raises(ClosedError):
        got.extend(holder[0])
    assert got in ([], [0])  # the item may have come before the stop
    assert f.in_flight == 0
    with pytest.raises(ClosedError):
        next(holder[0])
    assert f.in_flight == 0


def test_close_from_a_progress_callback_in_the_consuming_thread(tmp_path: Path) -> None:
    write_image(tmp_path, Spec(version="0.5", shape=(1, 64, 64), chunks=(1, 8, 8), levels=1))
    with ngio_async.open(tmp_path) as ds:
        holder: list[sync.SyncIterator[Tile]] = []

        def progress(done: int, total: int | None) -> None:
            if done == 3:
                holder[0].close()  # was: ValueError('generator already executing')

        holder.append(ds.tiles(prefetch=32, progress=progress))
        assert len(list(holder[0])) == 3  # the tile reported last, then a clean end
        assert ds[0, :8, :8].shape == (8, 8)


@pytest.mark.parametrize("what", ["tiles", "read"])
def test_closing_a_dataset_stops_the_loops_and_reads_of_other_threads(
    http_root: Path, http_server: StaticServer, what: str
) -> None:
    # another dataset keeps the event loop running: closing this one must stop its own work
    write_image(http_root / "img", Spec(version="0.4", shape=(1, 64, 64), chunks=(1, 16, 16)))
    url = f"{http_server.url}img"
    with ngio_async.open(url) as other:
        ds = ngio_async.open(url)
        tiles = ds.tiles()
        http_server.faults = Faults(delay=1.5)  # every request waits: the consumer blocks
        outcome: list[object] = []

        def consume() -> None:
            try:
                outcome.append(sum(1 for _ in tiles) if what == "tiles" else ds[...])
            except ClosedError as exc:
                outcome.append(exc)

        worker = threading.Thread(target=consume)
        worker.start()
        try:
            _wait(lambda: http_server.in_flight > 0)
            ds.close()  # was: returned at once, the read went on and returned pixels after it
            worker.join(1)  # less than one request's delay: stopped, not finished
            assert not worker.is_alive()
            assert len(outcome) == 1
            assert isinstance(outcome[0], ClosedError)
        finally:
            http_server.faults = Faults()
            worker.join(10)
        assert other[0, :4, :4].shape == (4, 4)  # the other dataset is unaffected
