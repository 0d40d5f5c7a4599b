"""Per-app state: the opened datasets, their identity (for ETags) and cached display defaults;
the images opened on first use (a plate's fields, a bioformats2raw container's images) and the
LRU that keeps them open."""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
from collections import OrderedDict
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import msgspec
import numpy as np

from .._errors import (
    ClosedError,
    CodecError,
    MetadataError,
    NotFoundError,
    StoreError,
    StoreTimeoutError,
    UnsupportedError,
)
from .._prefetch import first_leaf, start_deferred
from ..images import Dataset
from ..images._open import join
from ..meta import to_attrs
from ._errors import ApiError, logger, redact
from ._render import Window, compute_windows

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Mapping, Sequence

    from aiohttp.web import AbstractResource

    from ..images import Plate
    from ..meta import WellImage
    from ..stores import AsyncStore

__all__ = [
    "DEFAULT_MAX_OPEN_FIELDS",
    "ContainerEntry",
    "Entry",
    "FieldOf",
    "FieldSlot",
    "ImageOf",
    "PixelBudget",
    "PlateEntry",
    "WebState",
    "axis_index",
    "dataset_identity",
]

DEFAULT_MAX_OPEN_FIELDS = 256

_WINDOW_SAMPLE = 16 * 1024 * 1024  # elements of the smallest level read for default windows
_WINDOW_CROP = 2048  # y/x extent of that sample


def dataset_identity(name: str, ds: Dataset) -> str:
    """A stable digest of a dataset's name and metadata (levels, dtype, NGFF attributes)."""
    doc = {
        "name": name,
        "attrs": _attrs_of(ds),
        "levels": [
            [lvl.path, list(lvl.shape), str(lvl.dtype), list(lvl.chunks), lvl.shards]
            for lvl in ds.levels
        ],
    }
    return hashlib.sha256(msgspec.json.encode(doc, order="sorted")).hexdigest()[:24]


def _attrs_of(ds: Dataset) -> Any:
    """The NGFF attributes of ``ds`` as JSON values (of a 0.6 image, its 0.6 document: it is
    read, not written as 0.6; of a 0.1 - 0.3 one, its 0.4-shaped view's)."""
    from ..meta import ngff06_of
    from ..meta._base import dump
    from ..meta._ngff_old import OLD_VERSIONS

    ome06 = ngff06_of(ds.metadata.ome)
    version = ds.metadata.ngff_version
    if ome06 is not None:
        return dump(ome06)
    return to_attrs(ds.metadata.ome, "0.4" if version in OLD_VERSIONS else version)


def axis_roles(ds: Dataset) -> dict[str, int]:
    """Which axis plays ``t``, ``c``, ``z``, ``y``, ``x``: by name, else by NGFF type (``time``,
    ``channel``; a ``space`` axis before the last two is ``z``), so ``time/ch/depth/y/x`` works."""
    ms = ds.metadata.ome.multiscales
    types = [a.type for a in ms[0].axes] if ms else [None] * len(ds.axes)
    n = len(ds.axes)
    roles: dict[str, int] = {}
    if n >= 2:
        roles["y"], roles["x"] = n - 2, n - 1
    for i, name in enumerate(ds.axes[: n - 2]):
        if name in ("t", "c", "z"):
            roles.setdefault(name, i)
    by_type = {"time": "t", "channel": "c", "space": "z"}
    for i, kind in enumerate(types[: n - 2]):
        role = by_type.get(kind or "")
        if role is not None and i not in roles.values():
            roles.setdefault(role, i)
    return roles


def axis_index(ds: Dataset, name: str) -> int | None:
    """Index of the axis playing ``name`` (``t``, ``c``, ``z``, ``y``, ``x``), ``None`` if none."""
    return axis_roles(ds).get(name)


def _dtype_window(dtype: np.dtype[Any]) -> Window:
    """The whole range of an integer dtype; ``(0, 1)`` for floats, booleans and others."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return 0.0, 1.0


@dataclass(frozen=True, slots=True)
class FieldOf:
    """Where a served field of view lies: its plate's served name, well (``"A/1"``), field
    path and acquisition id (``None``: not stated)."""

    plate: str
    well: str
    field: str
    acquisition: int | None = None
    #: the key naming it in ``/api/datasets`` answers
    json_key: ClassVar[str] = "plate"

    @property
    def path(self) -> str:
        """The field's path in its plate (``A/1/0``)."""
        return f"{self.well}/{self.field}"

    def as_json(self) -> dict[str, str | int | None]:
        return {
            "name": self.plate,
            "well": self.well,
            "field": self.field,
            "acquisition": self.acquisition,
        }


@dataclass(frozen=True, slots=True)
class ImageOf:
    """Where a served image of a bioformats2raw container lies: the container's served name
    and the image's path in it (``"1"``)."""

    container: str
    path: str
    json_key: ClassVar[str] = "container"

    def as_json(self) -> dict[str, str | int | None]:
        return {"name": self.container, "path": self.path}


@dataclass
class Entry:
    """One served dataset (an image, a field of view of a served plate, an image of a served
    bioformats2raw container)."""

    name: str
    dataset: Dataset
    owned: bool
    identity: str
    #: the plate or container it belongs to
    part_of: FieldOf | ImageOf | None = None
    _windows: list[Window] | None = None
    _labels: list[str] | None = None
    _lock: anyio.Lock = field(default_factory=anyio.Lock)
    #: its label images opened for overlays (closed with it)
    _label_entries: dict[str, Entry] = field(default_factory=dict)

    @property
    def n_channels(self) -> int:
        axis = self.dataset.metadata.channel_axis
        return 1 if axis is None else self.dataset.shape[axis]

    async def default_windows(self, budget: PixelBudget | None = None) -> list[Window]:
        """Per-channel windows from the smallest level, computed once (0.1 and 99.9 percentiles).

        The sample read takes its turn in ``budget``. Undecodable data there (a corrupt chunk)
        falls back to the dtype's range (logged), so the rest of the image can still be shown;
        store errors are raised (and retried by the next request)."""
        async with self._lock:
            if self._windows is None:
                try:
                    self._windows = await self._compute_windows(budget)
                except CodecError as exc:
                    logger.warning(
                        "dataset %r: default windows from the dtype's range: %s",
                        self.name,
                        redact(str(exc), self.dataset.store.url),
                    )
                    self._windows = [_dtype_window(self.dataset.dtype)] * self.n_channels
            return self._windows

    async def _compute_windows(self, budget: PixelBudget | None) -> list[Window]:
        """Read (a bounded part of) the smallest level: a centred y/x crop of at most
        2048 x 2048, the middle plane of other axes while the sample is too large, and a
        smaller crop if every channel's plane still exceeds it (at most 16 Mi elements)."""
        ds = self.dataset
        lvl = ds.levels[-1]
        c_axis = ds.metadata.channel_axis
        selection: list[slice] = [slice(None)] * lvl.ndim
        extents = list(lvl.shape)
        for axis in range(max(0, lvl.ndim - 2), lvl.ndim):
            if extents[axis] > _WINDOW_CROP:
                start = (extents[axis] - _WINDOW_CROP) // 2
                selection[axis] = slice(start, start + _WINDOW_CROP)
                extents[axis] = _WINDOW_CROP
        for axis in range(lvl.ndim - 2):
            if axis != c_axis and math.prod(extents) > _WINDOW_SAMPLE:
                middle = extents[axis] // 2
                selection[axis] = slice(middle, middle + 1)
                extents[axis] = 1
        if math.prod(extents) > _WINDOW_SAMPLE:  # many channels: a smaller centred y/x crop
            side = max(1, math.isqrt(_WINDOW_SAMPLE // math.prod(extents[: lvl.ndim - 2])))
            for axis in range(max(0, lvl.ndim - 2), lvl.ndim):
                if extents[axis] > side:
                    start = (selection[axis].start or 0) + (extents[axis] - side) // 2
                    selection[axis] = slice(start, start + side)
                    extents[axis] = side
        async with budget.hold(math.prod(extents)) if budget else contextlib.nullcontext():
            data = await lvl.getitem(tuple(selection))
            return await anyio.to_thread.run_sync(compute_windows, data, c_axis)

    async def label_names(self) -> list[str]:
        """Names of the label images (read once, however many requests ask meanwhile).
        Invalid ``labels`` metadata lists none (and is logged): the image itself is still
        described and shown."""
        async with self._lock:
            if self._labels is None:
                try:
                    self._labels = await self.dataset.labels.names()
                except (MetadataError, UnsupportedError) as exc:
                    logger.warning(
                        "dataset %r: its labels are not listed: %s",
                        self.name,
                        redact(str(exc), self.dataset.store.url),
                    )
                    self._labels = []
            return self._labels

    async def label(self, name: str) -> Entry:
        """Label image ``name`` (one :meth:`label_names` lists), opened once and kept open
        with the image; 404 for another name, 502 when it cannot be opened."""
        names = await self.label_names()
        if name not in names:
            raise ApiError(
                404, "unknown_label", f"dataset {self.name!r} has no label image {name!r} ({names})"
            )
        async with self._lock:
            entry = self._label_entries.get(name)
            if entry is None:
                try:
                    ds = await self.dataset.labels.open(name, mode="r")
                except (MetadataError, UnsupportedError, NotFoundError, CodecError) as exc:
                    logger.warning(
                        "dataset %r: label image %r cannot be opened: %s",
                        self.name,
                        name,
                        redact(f"{type(exc).__name__}: {exc}", self.dataset.store.url),
                    )
                    raise ApiError(
                        502,
                        "label_unavailable",
                        f"label image {name!r} of dataset {self.name!r} cannot be opened "
                        "(see the server log)",
                    ) from None
                label_name = f"{self.name}/labels/{name}"
                entry = Entry(label_name, ds, True, dataset_identity(label_name, ds))
                self._label_entries[name] = entry
            return entry

    async def aclose(self) -> None:
        """Close its label images, then the dataset if the app opened it."""
        labels, self._label_entries = list(self._label_entries.values()), {}
        for label in labels:
            await label.dataset.aclose()
        if self.owned:
            await self.dataset.aclose()


class _Owner:
    """What serves images opened on first use (a plate, a container): what it calls them in
    messages, where they lie, and which could not be opened."""

    kind: ClassVar[str]  # "plate"
    member: ClassVar[str]  # "field"
    name: str
    unavailable: list[str]
    revision: int

    @property
    def store(self) -> AsyncStore:
        raise NotImplementedError

    @property
    def root(self) -> str:
        raise NotImplementedError

    async def open_image(self, path: str) -> Dataset:
        """Open the image at ``path`` (relative to :attr:`root`), read-only."""
        raise NotImplementedError

    def mark(self, what: str, *, available: bool) -> bool:
        """Record whether ``what`` (an image's path) can be opened; whether that is news."""
        if available and what in self.unavailable:
            self.unavailable.remove(what)
        elif not available and what not in self.unavailable:
            self.unavailable.append(what)
            self.unavailable.sort()
        else:
            return False
        self.revision += 1
        return True


@dataclass
class ContainerEntry(_Owner):
    """A served bioformats2raw container: its images are served as ``<name>/<path>``, opened
    on first use (start-up reads the layout group and the list of images only)."""

    kind: ClassVar[str] = "container"
    member: ClassVar[str] = "image"

    name: str
    container_store: AsyncStore
    ngff_version: str | None
    #: whether closing the app closes the store
    owned: bool
    #: the images' paths, in the container's order
    series: list[str]
    #: paths of the images whose last opening failed
    unavailable: list[str] = field(default_factory=list)
    revision: int = 0

    @property
    def store(self) -> AsyncStore:
        return self.container_store

    @property
    def root(self) -> str:
        return ""

    @property
    def images(self) -> list[str]:
        """The served dataset names of its images."""
        return [f"{self.name}/{path}" for path in self.series]

    async def open_image(self, path: str) -> Dataset:
        return await Dataset.open_in(
            self.store, join(self.root, path), parent_version=self.ngff_version
        )

    def slots(self) -> dict[str, FieldSlot]:
        return {
            name: FieldSlot(name, self, ImageOf(self.name, path))
            for name, path in zip(self.images, self.series, strict=True)
        }

    async def aclose(self) -> None:
        if self.owned:
            await self.store.aclose()


@dataclass
class PlateEntry(_Owner):
    """One served HCS plate: its fields are served as datasets named ``<plate>/<row>/<col>/<field>``."""

    kind: ClassVar[str] = "plate"
    member: ClassVar[str] = "field"

    name: str
    plate: Plate
    owned: bool
    #: served dataset names of its fields (those its wells list), in plate order
    fields: list[str] = field(default_factory=list)
    #: ``<row>/<col>`` of wells that could not be read, ``<row>/<col>/<field>`` of fields
    #: whose last opening failed (fields are opened on first use)
    unavailable: list[str] = field(default_factory=list)
    #: the fields of each well read
    images: dict[str, list[WellImage]] = field(default_factory=dict)
    #: wells the store failed to give (read again when the plate is listed or one of their
    #: fields is asked for)
    retry: list[str] = field(default_factory=list)
    retry_lock: anyio.Lock = field(default_factory=anyio.Lock)
    #: bumped whenever what ``/api/datasets`` says of the plate changes
    revision: int = 0

    @property
    def store(self) -> AsyncStore:
        return self.plate.store

    @property
    def root(self) -> str:
        return self.plate.root

    async def open_image(self, path: str) -> Dataset:
        well, _, field_path = path.rpartition("/")
        # read-only, even from a plate open for writing
        return await self.plate.image(well, field=field_path, mode="r")

    async def read_wells(self, wells: Sequence[str]) -> None:
        """Read the fields of ``wells`` (concurrently, within the plate's ``max_requests``); a
        well that cannot be read is logged and listed as unavailable."""
        limiter = anyio.CapacityLimiter(max(1, self.plate.limits.max_requests))

        async def one(well: str) -> None:
            async with limiter:
                try:
                    self.images[well] = (await self.plate.well(well)).images
                except Exception as exc:  # noqa: BLE001 - one bad well does not stop the others
                    leaf = first_leaf(exc)
                    transient = isinstance(leaf, StoreError)  # the next look may succeed
                    if transient and well not in self.retry:
                        self.retry.append(well)
                    elif not transient and well in self.retry:
                        self.retry.remove(well)
                    if self.mark(well, available=False):
                        text = redact(f"{type(leaf).__name__}: {leaf}", self.store.url)
                        logger.warning("plate %r: %s is not served: %s", self.name, well, text)
                    return
            self.mark(well, available=True)
            if well in self.retry:
                self.retry.remove(well)

        async with anyio.create_task_group() as tg:
            for well in wells:
                start_deferred(tg, one, well)

    def slots(self, known: Mapping[str, FieldSlot]) -> dict[str, FieldSlot]:
        """The fields of the wells read, in plate order (those in ``known`` kept as they are);
        :attr:`fields` follows."""
        out: dict[str, FieldSlot] = {}
        for well in self.plate.wells:
            for image in self.images.get(well, []):
                name = f"{self.name}/{well}/{image.path}"
                if name not in out:  # a well may list one field twice
                    where = FieldOf(self.name, well, image.path, image.acquisition)
                    out[name] = known.get(name) or FieldSlot(name, self, where)
        self.fields = list(out)
        self.revision += 1
        return out


class _Attempt:
    """One opening of a field, awaited by every request that wants the field meanwhile."""

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.error: ApiError | None = None


@dataclass
class FieldSlot:
    """A plate's field of view or a container's image: opened on first use, kept open while
    in the LRU of open fields (:meth:`WebState.lease`)."""

    name: str
    owner: PlateEntry | ContainerEntry
    where: FieldOf | ImageOf
    entry: Entry | None = None
    #: requests using the open entry (an entry in use is never closed)
    users: int = 0
    opening: _Attempt | None = None
    #: display defaults, kept when the dataset is closed (not read again on re-opening)
    windows: list[Window] | None = None
    labels: list[str] | None = None


class PixelBudget:
    """At most ``total`` pixels (array elements) held at once by the requests holding them;
    the others wait their turn, first come first served (one larger than ``total`` holds it
    all)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self._turn: anyio.Lock | None = None  # made in the event loop, on first use
        self._freed: anyio.Event | None = None

    @asynccontextmanager
    async def hold(self, pixels: int) -> AsyncIterator[None]:
        """Hold ``pixels`` of the budget for the block (waiting until they are free)."""
        pixels = min(pixels, self.total)
        if self._turn is None:
            self._turn = anyio.Lock()
        async with self._turn:  # the first in line waits for room, the others behind it
            while self.free < pixels:
                self._freed = anyio.Event()
                await self._freed.wait()
            self.free -= pixels
        try:
            yield
        finally:
            self.free += pixels
            if self._freed is not None:
                self._freed.set()


@dataclass
class WebState:
    """Settings and the datasets of one app (filled on start-up).

    Images are opened at start-up and stay open; a plate's fields and a container's images
    are opened on first use (at most once however many requests ask for one meanwhile) and
    kept in an LRU of at most ``max_open_fields`` open datasets; the least recently used one
    no request is using is closed when that bound is passed.
    """

    max_region_pixels: int
    tile_size: int
    cache_seconds: int
    max_open_fields: int = DEFAULT_MAX_OPEN_FIELDS
    #: the images, opened at start-up
    entries: dict[str, Entry] = field(default_factory=dict)
    plates: dict[str, PlateEntry] = field(default_factory=dict)
    containers: dict[str, ContainerEntry] = field(default_factory=dict)
    #: every container's images, then every plate's fields, by served name (opened or not)
    fields: dict[str, FieldSlot] = field(default_factory=dict)
    #: other names of fields: a container's name is its first image
    aliases: dict[str, str] = field(default_factory=dict)
    #: the open fields, least recently used first
    open_fields: OrderedDict[str, FieldSlot] = field(default_factory=OrderedDict)
    #: the ``/api/datasets`` body and the plates' and containers' revisions it was made at
    listing: tuple[tuple[int, ...], bytes] | None = None
    #: the ``/api/datasets`` resource, whose path says where the app is mounted
    anchor: AbstractResource | None = None
    #: bounds the worker threads that render tiles and encode regions (CPU-bound)
    render_limiter: anyio.CapacityLimiter = field(
        default_factory=lambda: anyio.CapacityLimiter(max(2, os.cpu_count() or 2))
    )
    #: the pixels that the tiles and regions being read and encoded hold together: at most
    #: ``max_region_pixels`` (memory stays bounded however many clients ask at once)
    budget: PixelBudget = field(init=False)
    #: the cancel scopes of the requests being handled (ended before the datasets close)
    handling: set[anyio.CancelScope] = field(default_factory=set)
    _all_handled: anyio.Event | None = None

    def __post_init__(self) -> None:
        self.budget = PixelBudget(self.max_region_pixels)

    @contextmanager
    def handle(self) -> Iterator[None]:
        """Handle a request in a cancel scope that :meth:`end_requests` cancels."""
        with anyio.CancelScope() as scope:
            self.handling.add(scope)
            try:
                yield
            finally:
                self.handling.discard(scope)
                if not self.handling and self._all_handled is not None:
                    self._all_handled.set()

    async def end_requests(self, seconds: float) -> None:
        """Cancel the requests still being handled and wait until they have ended (at most
        ``seconds``): at shutdown, before their datasets close. aiohttp's own shutdown
        cancels the handlers it waited for, but does not wait for them to end."""
        with anyio.move_on_after(seconds):
            while self.handling:
                self._all_handled = anyio.Event()
                for scope in self.handling:
                    scope.cancel()
                await self._all_handled.wait()

    def mount(self) -> str:
        """The path the app is mounted at: ``""`` at the root, ``"/ngio"`` under
        ``add_subapp("/ngio/", app)`` (aiohttp prefixes the sub-app's resources)."""
        if self.anchor is None:
            return ""
        return self.anchor.canonical.removesuffix("/api/datasets")

    def revisions(self) -> tuple[int, ...]:
        """What ``/api/datasets`` depends on beyond the images: changes when it should."""
        owners = [*self.plates.values(), *self.containers.values()]
        return tuple(owner.revision for owner in owners)

    def entry(self, name: str) -> Entry:
        """The image served as ``name``; 404 when there is none (a plate's field or a
        container's image is no such image: use :meth:`lease`)."""
        try:
            return self.entries[name]
        except KeyError:
            raise self._unknown(name) from None

    def _unknown(self, name: str) -> ApiError:
        message = f"no dataset named {name!r}"
        plate_name, _, rest = name.partition("/")
        plate = self.plates.get(plate_name)
        if name in self.plates:
            message = (
                f"{name!r} is an HCS plate: its fields of view are the datasets named "
                f"'{name}/<row>/<column>/<field>' (listed by /api/datasets)"
            )
        elif name in self.containers:
            message = f"container {name!r} lists no images"
        elif plate_name in self.containers:
            message = (
                f"container {plate_name!r} has no image {rest!r} "
                "(its images are listed by /api/datasets)"
            )
        elif plate is not None and rest.count("/") == 2:
            well = rest.rpartition("/")[0]
            if well in plate.unavailable:
                message = f"well {well!r} of plate {plate_name!r} could not be read (see the log)"
            else:
                message = (
                    f"plate {plate_name!r} has no field {rest!r} "
                    "(its fields are listed by /api/datasets)"
                )
        return ApiError(404, "unknown_dataset", message)

    @asynccontextmanager
    async def lease(self, name: str) -> AsyncIterator[Entry]:
        """The dataset served as ``name`` (an image, a plate's field or a container's image,
        opened if it is not), kept open until the block ends; 404 when there is none."""
        name = self.aliases.get(name, name)
        image = self.entries.get(name)
        if image is not None:
            yield image
            return
        slot = self.fields.get(name)
        if slot is None:
            await self.retry_wells(name.partition("/")[0])
            slot = self.fields.get(name)
        if slot is None:
            raise self._unknown(name)
        slot.users += 1
        try:
            yield await self._open_field(slot)
        finally:
            slot.users -= 1
            with anyio.CancelScope(shield=True):
                await self._evict()

    async def _open_field(self, slot: FieldSlot) -> Entry:
        """``slot``'s entry, opened by the first request that needs it; requests arriving
        meanwhile wait for that opening (if its request is cancelled, one of them opens)."""
        while True:
            if slot.entry is not None:
                self.open_fields.move_to_end(slot.name)
                return slot.entry
            attempt = slot.opening
            if attempt is not None:
                await attempt.done.wait()
                if attempt.error is not None:
                    error = attempt.error
                    raise ApiError(error.status, error.code, error.message)
                continue
            attempt = slot.opening = _Attempt()
            try:
                ds = await slot.owner.open_image(slot.where.path)
            except Exception as exc:  # noqa: BLE001 - answered as an error, the rest still served
                attempt.error = self._field_error(slot, exc)
                raise attempt.error from None
            else:
                entry = Entry(
                    slot.name,
                    ds,
                    True,
                    dataset_identity(slot.name, ds),
                    slot.where,
                    _windows=slot.windows,
                    _labels=slot.labels,
                )
                slot.entry = entry
                self.open_fields[slot.name] = slot
                slot.owner.mark(slot.where.path, available=True)
                return entry
            finally:  # opened, failed or cancelled: the waiters go on
                slot.opening = None
                attempt.done.set()

    def _field_error(self, slot: FieldSlot, exc: BaseException) -> ApiError:
        """The answer to a field or image that could not be opened (logged; listed as
        unavailable unless the store failed, which the next request retries)."""
        leaf = first_leaf(exc)
        owner = slot.owner
        # the store's URL as a whole: redact() ends a URL at a space, which paths may have
        reason = redact(f"{type(leaf).__name__}: {leaf}", owner.store.url)
        path = slot.where.path
        kind, member = owner.kind, owner.member
        if isinstance(leaf, ClosedError):
            return ApiError(503, "closed", "the server is shutting down")
        if isinstance(leaf, StoreTimeoutError):
            error = ApiError(504, "store_timeout", f"dataset {slot.name!r}: the store timed out")
        elif isinstance(leaf, StoreError):
            error = ApiError(502, "store_error", f"dataset {slot.name!r}: {type(leaf).__name__}")
        elif isinstance(leaf, MetadataError | UnsupportedError | NotFoundError | CodecError):
            if owner.mark(path, available=False):  # logged once, not on every request
                logger.warning("%s %r: %s is not served: %s", kind, owner.name, path, reason)
            return ApiError(
                502,
                f"{member}_unavailable",
                f"{member} {path!r} of {kind} {owner.name!r} cannot be opened: {reason}",
            )
        else:
            logger.error("%s %r: opening %s failed: %s", kind, owner.name, path, reason)
            return ApiError(500, "internal_error", "unexpected server error (see the server log)")
        logger.warning("%s %r: %s could not be opened: %s", kind, owner.name, path, reason)
        return error

    async def retry_wells(self, plate_name: str | None = None) -> None:
        """Read again the wells of a plate (or of all) that the store failed to give."""
        for name, plate in self.plates.items():
            if not plate.retry or plate_name not in (None, name):
                continue
            async with plate.retry_lock:
                if plate.retry:
                    await plate.read_wells(list(plate.retry))
                    fields = {
                        key: slot
                        for key, slot in self.fields.items()
                        if isinstance(slot.owner, ContainerEntry)
                    }
                    for other in self.plates.values():  # every plate's, in order
                        fields.update(other.slots(self.fields))
                    self.fields = fields

    async def _evict(self) -> None:
        """Close the least recently used open fields no request is using, down to the bound."""
        while len(self.open_fields) > self.max_open_fields:
            victim = next((s for s in self.open_fields.values() if s.users == 0), None)
            if victim is None or victim.entry is None:
                return
            del self.open_fields[victim.name]
            entry, victim.entry = victim.entry, None
            victim.windows, victim.labels = entry._windows, entry._labels
            await entry.aclose()

    async def close_fields(self) -> None:
        """Close every open field (at shutdown)."""
        while self.open_fields:
            _, slot = self.open_fields.popitem(last=False)
            entry, slot.entry = slot.entry, None
            if entry is not None:
                await entry.aclose()
