"""``ngio-async validate URL``: NGFF validation of a whole hierarchy, concurrently.

Image -> labels -> label images; plate -> rows, wells -> fields (-> their labels);
bioformats2raw -> its plate, or ``OME/series``, or the groups 0, 1, ... (and the OME-XML's
Images). Every group's metadata is validated on its own (``ngio_async.meta.validate``, with
``strict``), then the cross-node rules are checked by reading every level's array metadata
(number of dimensions, 0.5 ``dimension_names``, integer labels, levels largest first, omero
channels per channel) and the references between nodes (plate -> well, well -> field and its
acquisition, labels -> label image and its level count, image-label -> source image). Every
problem is collected (the walk does not stop at the first one) with its store key and JSON path.
MUST rules are errors, SHOULD rules warnings (``strict``: the SHOULD fields of the official
strict schemas are errors too).
"""

from __future__ import annotations

import contextlib
import itertools
import posixpath
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

import anyio
import msgspec

from .._errors import (
    CodecError,
    MetadataError,
    NotFoundError,
    PermissionDeniedError,
    UnsupportedError,
)
from .._open_any import _group_url
from .._prefetch import start_deferred
from ..images._open import join, no_group, read_level_metadata
from ..meta import NGFF_KEYS, MetadataWarning, read_document, validate
from ..meta._ngff_old import OLD_VERSIONS, is_zarr_v2
from ..meta.zarr import ArrayV3Meta
from ..stores import open_store
from ._common import (
    EXIT_INVALID,
    EXIT_OK,
    check_url,
    refuse_tiff,
    request_options,
    stderr_console,
    store_options,
    wants_progress,
)

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from anyio.abc import TaskGroup

    from ..meta import OmeMetadata
    from ..stores import AsyncStore

__all__ = ["Problem", "Report", "run_validate", "validate_hierarchy"]

_CONCURRENCY = 32
# walker kinds -> the document kind ``validate`` requires (a label image is an image; its
# ``image-label`` block is validated when present)
_KIND = {"label": "image"}
#: OME-XML elements that carry pixels (bioformats2raw: ``<MetadataOnly/>`` instead)
_PIXEL_DATA = frozenset(("BinData", "TiffData", "BinaryOnly"))


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding: ``severity`` error or warning, the store ``key``, the JSON ``path``."""

    severity: str
    key: str
    path: str
    message: str

    def line(self) -> str:
        where = f" at `{self.path}`" if self.path else ""
        return f"{self.severity.upper()} {self.key}{where}: {self.message}"


@dataclass(slots=True)
class Report:
    url: str
    nodes: dict[str, str] = field(default_factory=dict)  # root -> kind checked
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def valid(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "valid": self.valid,
            "nodes": len(self.nodes),
            "errors": [_problem_json(p) for p in self.errors],
            "warnings": [_problem_json(p) for p in self.warnings],
        }


def _problem_json(p: Problem) -> dict[str, str]:
    return {"key": p.key, "path": p.path, "message": p.message}


class _Walker:
    def __init__(
        self,
        store: AsyncStore,
        *,
        strict: bool,
        depth: int | None,
        on_node: Callable[[int], None] | None,
    ) -> None:
        self.store = store
        self.strict = strict
        self.depth = depth
        self.on_node = on_node
        self.report = Report(store.url)
        self.limiter = anyio.CapacityLimiter(_CONCURRENCY)
        self.tg: TaskGroup | None = None
        self.image_levels: dict[str, int] = {}  # image root -> its number of levels
        self.acquisitions: dict[str, list[int]] = {}  # plate root -> its acquisition ids
        self.label_owner: dict[str, str] = {}  # label image root -> its image's root
        self.invalid: dict[str, Any] = {}  # group root -> its document, when it is invalid
        self.denied: PermissionDeniedError | None = None  # the first key the store denied
        self.old_noted = False  # a group of NGFF 0.1 - 0.3 was reported (once)
        #: bioformats2raw containers stating no version (0.4 by default): their series may be
        #: of 0.1 - 0.3 (bioformats2raw 0.3 wrote NGFF 0.2 series so)
        self.unstated: set[str] = set()

    # -------------------------------------------------------------------- reading keys
    async def _get(self, key: str) -> Any:
        """The object at ``key``, ``None`` when missing. Stores that may not list (S3 without
        s3:ListBucket) answer 403 for a missing key: a denied key reads as missing too (the
        first denial is kept: when the root itself cannot be read, it is the error)."""
        try:
            return await self.store.get(key)
        except PermissionDeniedError as exc:
            self.denied = self.denied or exc
            return None

    async def _exists(self, key: str) -> bool:
        """Whether ``key`` exists (denied: as :meth:`_get`)."""
        try:
            return await self.store.exists(key)
        except PermissionDeniedError as exc:
            self.denied = self.denied or exc
            return False

    # -------------------------------------------------------------------- recording
    def error(self, key: str, path: str, message: str) -> None:
        self.report.problems.append(Problem("error", key, path, message))

    def warn(self, key: str, message: str, path: str = "") -> None:
        problem = Problem("warning", key, path, message)
        if problem not in self.report.problems:
            self.report.problems.append(problem)

    def _rule(self, exc: MetadataError) -> str:
        # library messages may start with "<store url>/<key>: "; the key is printed already
        rule = exc.rule
        prefix = self.store.url.rstrip("/") + "/"
        if rule.startswith(prefix) and ": " in rule:
            rule = rule.split(": ", 1)[1]
        return rule

    def child(self, depth: int, root: str, kind: str, **kw: Any) -> None:
        if self.depth is not None and depth > self.depth:
            return
        assert self.tg is not None
        version = kw.get("parent_version")
        start_deferred(self.tg, self.node, root, kind, depth, version, kw.get("ref"))

    # -------------------------------------------------------------------- reading
    async def read(
        self,
        root: str,
        kind: str | None,
        parent_version: str | None = None,
        *,
        bare_ok: bool = False,
    ) -> tuple[str, OmeMetadata | None, bool]:
        """``(key, metadata, found)``: the group's validated metadata, its problems recorded.

        ``bare_ok``: a group without NGFF keys is fine (metadata ``None``, nothing recorded).
        """
        # a 0.4 parent's children are 0.4 groups: .zattrs first (no zarr.json miss per group)
        v2 = is_zarr_v2(parent_version)
        names = (".zattrs", "zarr.json") if v2 else ("zarr.json", ".zattrs")
        async with self.limiter:
            key = join(root, names[0])
            raw = await self._get(key)
            if raw is None:
                key = join(root, names[1])
                raw = await self._get(key)
        if raw is None:
            if self.denied is not None and not root:  # nothing of the hierarchy is readable
                raise self.denied
            return join(root, "zarr.json"), None, False
        if key.endswith(".zattrs"):
            await self._check_zgroup(root)
        doc: Any = bytes(raw)
        if bare_ok and not _ngff_keys(doc):
            return key, None, True
        if key.endswith("zarr.json") and parent_version is not None:
            doc, inherited = _with_version(doc, parent_version)
            if inherited:
                self.warn(
                    key,
                    f"no 'version': NGFF {parent_version} requires one in every group's 'ome' "
                    f"(validated as the parent's {parent_version!r})",
                    "$.attributes.ome",
                )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            want = _KIND.get(kind or "", kind)
            try:
                meta = validate(doc, kind=want, strict=self.strict)
            except MetadataError as exc:
                self.error(key, exc.path, exc.rule)
                meta = None
                self.invalid[root] = doc  # what it names is still walked
                if self.strict:  # a SHOULD rule: still walk what the document references
                    with contextlib.suppress(MetadataError, UnsupportedError):
                        meta = validate(doc, kind=want)
            except UnsupportedError as exc:
                if not root:  # nothing to validate (an NGFF version not read yet): not invalid
                    url = f"{self.store.url.rstrip('/')}/{key}"
                    raise UnsupportedError(f"{url}: {exc}") from None
                self.error(key, "", str(exc))
                meta = None
        for w in caught:
            if issubclass(w.category, MetadataWarning):
                self.warn(key, " ".join(str(w.message).split()))
        if meta is not None and parent_version in OLD_VERSIONS and _unversioned(meta):
            meta.version = parent_version  # (a labels group of 0.1 - 0.3 states none)
        if meta is not None and meta.version in OLD_VERSIONS and not self.old_noted:
            self.old_noted = True
            self.warn(
                key,
                f"NGFF {meta.version}, a version before 0.4: read, not validated (only the "
                "rules NGFF 0.4 keeps are checked, on its 0.4-shaped view; "
                "`ngio_async convert` writes it as 0.4 or 0.5)",
            )
        return key, meta, True

    async def _check_zgroup(self, root: str) -> None:
        """A zarr v2 group is its ``.zgroup`` (``{"zarr_format": 2}``): attributes without one
        are no group to zarr-python or ome-zarr-py."""
        key = join(root, ".zgroup")
        async with self.limiter:
            raw = await self._get(key)
        if raw is None:
            self.error(
                key,
                "",
                "missing: a zarr v2 group needs a .zgroup beside its .zattrs (zarr-python and "
                "ome-zarr-py find no group without it)",
            )
            return
        try:
            doc = read_document(raw)
        except msgspec.DecodeError as exc:
            self.error(key, "$", f"not JSON: {exc}")
            return
        if not isinstance(doc, dict) or doc.get("zarr_format") != 2:
            self.error(key, "$.zarr_format", 'a zarr v2 group document is {"zarr_format": 2}')

    # -------------------------------------------------------------------- nodes
    async def node(
        self,
        root: str,
        kind: str | None,
        depth: int,
        parent_version: str | None,
        ref: str | None = None,
    ) -> None:
        """Validate the group at ``root`` and walk what it references (``ref``: who names it;
        kind ``labels_optional``: an image's ``labels`` group, which may be absent)."""
        optional = kind == "labels_optional"
        if optional:
            kind = "labels"
        key, meta, found = await self.read(root, kind, parent_version)
        if not found and optional:  # no labels
            return
        self.report.nodes[root] = kind or "root"
        if self.on_node is not None:
            self.on_node(len(self.report.nodes))
        if not found:
            what = kind or "OME-Zarr group"
            if depth == 0:
                raise await no_group(self.store, root, key, probe=True)
            named = f" (named by {ref})" if ref else ""
            self.error(root, "", f"missing {what}: neither zarr.json nor .zattrs exists{named}")
            return
        if meta is None:
            self._walk_invalid(root, kind, depth, parent_version)
            return
        version = meta.version or parent_version
        if not (meta.version in OLD_VERSIONS and root.rpartition("/")[0] in self.unstated):
            self._check_version(key, meta, parent_version)
        if meta.multiscales is not None:
            self._count_levels(root, key, kind, len(meta.multiscales[0].datasets))
            await self.levels(root, key, meta, label=kind == "label")
            if kind != "label":
                self.child(
                    depth + 1, join(root, "labels"), "labels_optional", parent_version=version
                )
        if kind == "label" and meta.multiscales is not None and meta.image_label is None:
            self.warn(key, f"no 'image-label' at `{_ome_path(key)}`: a label image should have one")
        source = meta.image_label.source if meta.image_label is not None else None
        if source is not None and source.image is not None:
            await self._check_source(root, key, source.image)
        if meta.labels is not None:
            for name in meta.labels:
                if root:  # the labels group of the image one level up
                    self.label_owner[join(root, name)] = root.rpartition("/")[0]
                self.child(depth + 1, join(root, name), "label", parent_version=version)
            between = {n.rsplit("/", i)[0] for n in meta.labels for i in range(1, n.count("/") + 1)}
            if between and (self.depth is None or depth < self.depth):
                assert self.tg is not None
                for name in sorted(between):
                    start_deferred(self.tg, self._intermediate, join(root, name), root)
        if meta.plate is not None:
            if meta.plate.acquisitions:
                self.acquisitions[root] = [a.id for a in meta.plate.acquisitions]
            for well in meta.plate.wells:
                self.child(depth + 1, join(root, well.path), "well", parent_version=version)
            if self.depth is None or depth < self.depth:
                assert self.tg is not None
                for row in sorted({w.path.split("/")[0] for w in meta.plate.wells}):
                    start_deferred(self.tg, self._row_group, join(root, row), key)
        if meta.well is not None:
            if kind == "well":
                self._check_acquisitions(root, key, meta)
            for image in meta.well.images:
                self.child(depth + 1, join(root, image.path), "image", parent_version=version)
        if meta.bioformats2raw_layout is not None and meta.multiscales is None:
            if _unversioned(meta):
                self.unstated.add(root)
            await self.series(root, depth, version, plate=meta.plate is not None)
        if depth == 0 and not meta.kinds:
            self.error(key, "$", "no NGFF metadata: not an OME-Zarr group")

    def _walk_invalid(
        self, root: str, kind: str | None, depth: int, parent_version: str | None
    ) -> None:
        """Walk what an invalid group document names as far as it can be read (an image's
        labels, a labels group's images, a plate's wells, a well's images): their errors are
        reported too, not hidden behind the first."""
        doc = self.invalid.pop(root, None)
        if isinstance(doc, bytes | bytearray):
            with contextlib.suppress(msgspec.DecodeError):
                doc = read_document(doc)
        if isinstance(doc, dict) and "zarr_format" in doc:
            attrs = doc.get("attributes")
            doc = attrs.get("ome") if isinstance(attrs, dict) else None
        if not isinstance(doc, dict):
            return
        version = doc.get("version") if isinstance(doc.get("version"), str) else parent_version

        def paths(entries: Any) -> list[str]:
            items = entries if isinstance(entries, list) else []
            found = [e.get("path") if isinstance(e, dict) else e for e in items]
            return [p for p in found if isinstance(p, str) and p and ".." not in p.split("/")]

        if "multiscales" in doc and kind != "label":
            self.child(depth + 1, join(root, "labels"), "labels_optional", parent_version=version)
        for name in paths(doc.get("labels")):
            self.child(depth + 1, join(root, name), "label", parent_version=version)
        plate, well = doc.get("plate"), doc.get("well")
        for path in paths(plate.get("wells") if isinstance(plate, dict) else None):
            self.child(depth + 1, join(root, path), "well", parent_version=version)
        for path in paths(well.get("images") if isinstance(well, dict) else None):
            self.child(depth + 1, join(root, path), "image", parent_version=version)

    def _check_version(self, key: str, meta: OmeMetadata, parent_version: str | None) -> None:
        if parent_version is not None and meta.version and meta.version != parent_version:
            where = "$.attributes.ome.version" if key.endswith("zarr.json") else "$"
            self.error(  # NGFF: the version MUST be consistent within a hierarchy
                key,
                where,
                f"NGFF version {meta.version} differs from its parent's {parent_version}",
            )

    async def _check_source(self, root: str, key: str, image: str) -> None:
        """``image-label.source.image`` MUST be the relative path to an image group (checked
        when it stays inside the store)."""
        target = posixpath.normpath(posixpath.join("/", root, image)).lstrip("/")
        if posixpath.normpath(posixpath.join(root or ".", image)).startswith(".."):
            return  # above the validated root: not ours to read
        if target in self.image_levels:  # an image validated already (the usual '../../')
            return
        if await self._probe_image(target) is not True:
            self.error(
                key,
                f"{_ome_path(key)}.image-label.source.image",
                f"{image!r} leads to {target or '.'!r}, which is not an image group "
                "(a group with multiscales)",
            )

    async def _row_group(self, row: str, plate_key: str) -> None:
        """The group of a plate row (between the plate and its wells) MUST exist."""
        async with self.limiter:
            found = await self._exists(join(row, "zarr.json")) or await self._exists(
                join(row, ".zgroup")
            )
        if not found:
            self.error(
                row,
                "",
                f"missing row group: neither zarr.json nor .zgroup exists (the plate {plate_key} "
                "has wells in this row; NGFF: a group per row between the plate and its wells)",
            )

    def _check_acquisitions(self, root: str, key: str, meta: OmeMetadata) -> None:
        """W3: a field's ``acquisition`` is one of the plate's; required with several of them."""
        assert meta.well is not None
        ids = self.acquisitions.get(root.rsplit("/", 2)[0] if root.count("/") >= 2 else "")
        if ids is None:
            return
        for i, image in enumerate(meta.well.images):
            path = f"{_ome_path(key)}.well.images[{i}].acquisition"
            if image.acquisition is None and len(ids) > 1:
                self.error(
                    key, path, f"missing: the plate has {len(ids)} acquisitions {sorted(ids)}"
                )
            elif image.acquisition is not None and image.acquisition not in ids:
                self.error(
                    key,
                    path,
                    f"acquisition {image.acquisition} is not one of the plate's {sorted(ids)}",
                )

    async def _intermediate(self, group: str, labels: str) -> None:
        """A group between the labels group and a label image MUST NOT hold NGFF metadata."""
        async with self.limiter:
            raw = await self._get(join(group, "zarr.json"))
            key = join(group, "zarr.json")
            if raw is None:
                key = join(group, ".zattrs")
                raw = await self._get(key)
        found = sorted(_ngff_keys(bytes(raw), ())) if raw is not None else []
        if found:
            self.error(
                key,
                _ome_path(key),
                f"{', '.join(map(repr, found))} in a group between the labels group "
                f"{labels or '.'!r} and its label images: such groups must not hold NGFF metadata",
            )

    def _count_levels(self, root: str, key: str, kind: str | None, count: int) -> None:
        """A label image needs one level per level of its image (NGFF labels: MUST)."""
        if kind != "label":
            self.image_levels[root] = count
            return
        image_root = self.label_owner.get(root)
        expected = None if image_root is None else self.image_levels.get(image_root)
        if expected is not None and count != expected:
            where = "$.attributes.ome" if key.endswith("zarr.json") else "$"
            self.error(
                key,
                f"{where}.multiscales[0].datasets",
                f"the label image has {count} levels and its image {expected}: "
                "a label image must have one level per image level",
            )

    async def levels(self, root: str, key: str, meta: OmeMetadata, *, label: bool) -> None:
        """Cross-node checks: every level's array metadata against its multiscale (each of
        them: readers may pick any by name)."""
        assert meta.multiscales is not None
        checked: set[str] = set()
        for i in range(len(meta.multiscales)):
            shapes = await self._multiscale_levels(root, key, meta, i, checked, label=label)
            if i == 0 and shapes:
                self._check_channels(key, meta, shapes[0])

    async def _multiscale_levels(
        self,
        root: str,
        key: str,
        meta: OmeMetadata,
        index: int,
        checked: set[str],
        *,
        label: bool,
    ) -> list[tuple[int, ...]]:
        """The levels of ``meta.multiscales[index]`` (a level that an earlier multiscale
        names too is read and reported once); their shapes, in order, as far as readable."""
        assert meta.multiscales is not None
        ms = meta.multiscales[index]
        paths = tuple(d.path for d in ms.datasets)
        shapes: dict[str, tuple[int, ...]] = {}
        array_file = ".zarray" if meta.version is None or is_zarr_v2(meta.version) else "zarr.json"
        names = ", ".join(ms.axis_names)

        async def one(path: str) -> None:
            async with self.limiter:
                try:
                    (arr,) = await read_level_metadata(
                        self.store, root, meta, (path,), multiscale=index
                    )
                except (
                    MetadataError,
                    NotFoundError,
                    CodecError,
                    UnsupportedError,
                    PermissionDeniedError,  # a missing level, on a store that may not list
                ) as exc:
                    if path in checked:
                        return
                    level_key = join(root, path, array_file)
                    if isinstance(exc, MetadataError):
                        self.error(level_key, exc.path, self._rule(exc))
                    elif isinstance(exc, NotFoundError) and (
                        other := await self._other_format(root, path, meta.version)
                    ):
                        self.error(*other)
                    else:
                        self.error(level_key, "", str(exc))
                    return
            shapes[path] = arr.shape
            if path in checked:
                return
            if (label or meta.image_label is not None) and arr.dtype.kind not in "iu":
                where = "$.data_type" if isinstance(arr, ArrayV3Meta) else "$.dtype"
                rule = f"label level {path!r} has dtype {arr.dtype}; labels are integers"
                if is_zarr_v2(meta.version):  # stated as a MUST from 0.5 on
                    self.warn(join(root, path, array_file), rule, where)
                else:
                    self.error(join(root, path, array_file), where, rule)
            if (
                isinstance(arr, ArrayV3Meta)
                and (arr.dimension_names is None or None in arr.dimension_names)
                and meta.version == "0.5"
            ):
                missing = "no dimension_names" if arr.dimension_names is None else "null ones"
                self.error(  # NGFF 0.5.2: MUST (0.6 has no such rule)
                    join(root, path, array_file),
                    "$.dimension_names",
                    f"level {path!r} has {missing}: NGFF 0.5 arrays must name their "
                    f"dimensions as the axes ({names})",
                )

        async with anyio.create_task_group() as tg:
            for path in paths:
                start_deferred(tg, one, path)
        checked.update(paths)
        known = [p for p in paths if p in shapes]
        for prev, cur in itertools.pairwise(known):
            a, b = shapes[prev], shapes[cur]
            if len(a) == len(b) and any(y > x for x, y in zip(a, b, strict=True)):
                self.error(  # NGFF: the paths MUST go from largest to smallest
                    key,
                    f"{_ome_path(key)}.multiscales[{index}].datasets",
                    f"level {cur!r} {b} is larger than level {prev!r} {a}: "
                    "the levels must go from largest (highest resolution) to smallest",
                )
        return [shapes[p] for p in known]

    def _check_channels(self, key: str, meta: OmeMetadata, shape: tuple[int, ...]) -> None:
        """omero: one channel per index of the channel axis (SHOULD)."""
        assert meta.multiscales is not None
        if meta.omero is None:
            return
        types = [a.type for a in meta.multiscales[0].axes]
        size = shape[types.index("channel")] if "channel" in types else 1
        if len(shape) == len(types) and len(meta.omero.channels) != size:
            self.warn(
                key,
                f"omero has {len(meta.omero.channels)} channels and the image {size} - at "
                f"`{_ome_path(key)}.omero.channels` (one per index of the channel axis)",
            )

    async def _other_format(
        self, root: str, path: str, version: str | None
    ) -> tuple[str, str, str] | None:
        """A level stored in the other zarr format than its NGFF version needs (0.4 metadata
        over zarr v3 arrays, as zarr-python 3 writes by default): ``(key, path, message)``."""
        v2 = version is None or is_zarr_v2(version)
        other = join(root, path, "zarr.json" if v2 else ".zarray")
        if not await self._exists(other):
            return None
        found, needed = (
            ("zarr v3", "zarr v2 (.zarray)") if v2 else ("zarr v2", "zarr v3 (zarr.json)")
        )
        message = f"level {path!r} is a {found} array: NGFF {version or '0.4'} needs {needed}"
        return other, "", message

    async def series(self, root: str, depth: int, version: str | None, *, plate: bool) -> None:
        """bioformats2raw (NGFF bf2raw): the images are the plate's fields when there is a plate
        (walked as a plate), else the ``OME`` group's ``series`` paths, else the groups ``0``,
        ``1``, ... numbered without a gap; the ``OME/METADATA.ome.xml`` has one ``Image`` per
        image, in the same order."""
        if self.depth is not None and depth >= self.depth:
            return
        ome_root = join(root, "OME")
        ome_key, meta, found = await self.read(ome_root, None, version, bare_ok=True)
        if found:
            self.report.nodes[ome_root] = "ome"
        if meta is not None:
            self._check_version(ome_key, meta, version)
        if plate:
            return
        series = meta.series if meta is not None else None
        if series is not None:
            where = "$.attributes.ome" if ome_key.endswith("zarr.json") else "$"
            for i, name in enumerate(series):
                ref = f"{ome_key} `{where}.series[{i}]`"
                self.child(depth + 1, join(root, name), "image", parent_version=version, ref=ref)
            if not series:
                self.warn(ome_key, "'series' is empty: the container lists no image")
            count = len(series)
        else:
            count = await self._numbered_images(root, depth, version)
        await self._check_ome_xml(ome_root, count, "series paths" if series else "image groups")

    async def _numbered_images(self, root: str, depth: int, version: str | None) -> int:
        """Walk the groups ``0``, ``1``, ... up to the first missing one; report numbered images
        after that gap (probed in batches, at least 8 numbers past the gap)."""
        batch = 16
        found: list[bool | None] = []  # None: no group, False: a group, True: an image

        async def probe(more: list[bool | None], i: int, name: str) -> None:
            more[i] = await self._probe_image(name)

        while None not in found or len(found) - found.index(None) <= 8:
            more: list[bool | None] = [None] * batch
            async with anyio.create_task_group() as tg:
                for i in range(batch):
                    start_deferred(tg, probe, more, i, join(root, str(len(found) + i)))
            found += more
        count = found.index(None)
        for i in range(count):
            self.child(depth + 1, join(root, str(i)), "image", parent_version=version)
        if count == 0:
            self.error(join(root, "0"), "", "bioformats2raw container without series '0'")
        for i in (i for i, image in enumerate(found) if image and i > count):
            self.error(
                join(root, str(i)),
                "",
                f"image group '{i}' after a gap ('{count}' is missing): without 'series' in "
                "the OME group, bioformats2raw images must be the groups 0, 1, 2, ... with no gap",
            )
        return count

    async def _probe_image(self, root: str) -> bool | None:
        """``None``: no group at ``root``; else whether it has NGFF ``multiscales``."""
        async with self.limiter:
            raw = await self._get(join(root, "zarr.json"))
            if raw is None:
                raw = await self._get(join(root, ".zattrs"))
        return None if raw is None else "multiscales" in _ngff_keys(bytes(raw))

    async def _check_ome_xml(self, ome_root: str, count: int, what: str) -> None:
        """``OME/METADATA.ome.xml``, when present: one ``Image`` per image, metadata only."""
        key = join(ome_root, "METADATA.ome.xml")
        async with self.limiter:
            raw = await self._get(key)
        if raw is None:
            return
        try:
            xml = ElementTree.fromstring(bytes(raw))
        except ElementTree.ParseError as exc:
            self.error(key, "", f"not well-formed XML: {exc}")
            return
        images = [e for e in xml if _local(e.tag) == "Image"]
        if any(_local(e.tag) == "BinaryOnly" for e in xml):
            self.error(key, "", "BinaryOnly: bioformats2raw's OME-XML must use <MetadataOnly/>")
        if len(images) != count:
            self.error(
                key,
                "",
                f"{len(images)} OME-XML Image elements for {count} {what}: every bioformats2raw "
                "image must be one OME-XML Image, in the same order",
            )
        for i, image in enumerate(images):
            for pixels in (e for e in image if _local(e.tag) == "Pixels"):
                data = sorted({t for e in pixels if (t := _local(e.tag)) in _PIXEL_DATA})
                if data:
                    self.error(
                        key,
                        "",
                        f"Image {i} has {', '.join(data)}: bioformats2raw's OME-XML must use "
                        "<MetadataOnly/> (the pixels are in the zarr arrays)",
                    )

    async def run(self) -> Report:
        async with anyio.create_task_group() as tg:
            self.tg = tg
            await self.node("", None, 0, None)
        self.report.problems.sort(key=lambda p: (p.severity != "error", p.key, p.path))
        return self.report


def _ome_path(key: str) -> str:
    """The JSON path of the NGFF object in the document ``key`` (0.5 ``zarr.json``, 0.4 ``.zattrs``)."""
    return "$.attributes.ome" if key.endswith("zarr.json") else "$"


def _local(tag: str) -> str:
    """An XML tag without its namespace."""
    return tag.rpartition("}")[2]


def _ngff_keys(raw: bytes, bad: tuple[str, ...] = NGFF_KEYS) -> set[str]:
    """The NGFF keys of a group document (0.4 ``.zattrs``, 0.5 ``zarr.json``); ``bad`` when it
    is not a JSON object (by default all of them: its validation reports why)."""
    try:
        doc = read_document(raw)
    except msgspec.DecodeError:
        return set(bad)
    if not isinstance(doc, dict):
        return set(bad)
    if "zarr_format" in doc:
        attrs = doc.get("attributes")
        doc = attrs.get("ome") if isinstance(attrs, dict) else None
        if not isinstance(doc, dict):
            return set()
    return set(NGFF_KEYS).intersection(doc)


def _unversioned(meta: OmeMetadata) -> bool:
    """Whether a group read as 0.4 states no version anywhere (it is its parent's)."""
    objs = [*(meta.multiscales or ()), meta.plate, meta.well, meta.image_label]
    return meta.version == "0.4" and all(getattr(o, "version", None) is None for o in objs)


def _with_version(raw: bytes, version: str) -> tuple[Any, bool]:
    """A 0.5 child ``zarr.json`` without ``ome.version`` inherits the parent's (ome-zarr-py 0.18
    writes its labels group so): ``(document, whether it did)``."""
    try:
        doc = read_document(raw)
    except msgspec.DecodeError:
        return raw, False
    attrs = doc.get("attributes") if isinstance(doc, dict) else None
    ome = attrs.get("ome") if isinstance(attrs, dict) else None
    if isinstance(ome, dict) and "version" not in ome:
        ome["version"] = version
        return doc, True
    return doc, False


async def validate_hierarchy(
    url: str,
    *,
    strict: bool = False,
    depth: int | None = None,
    on_node: Callable[[int], None] | None = None,
    **options: Any,
) -> Report:
    """Validate the hierarchy at ``url``; raises only for I/O errors and a missing root."""
    refuse_tiff(url, "validate")
    url = _group_url(url)  # a URL of the group's zarr.json / .zattrs: the group
    async with open_store(url, **options) as store:
        return await _Walker(store, strict=strict, depth=depth, on_node=on_node).run()


def run_validate(args: argparse.Namespace) -> int:
    import json

    from ._run import run_async

    check_url(args.url)

    loose: list[str] = []
    progress = None
    console = stderr_console()
    # a spinner on a terminal only: elsewhere it would leave an empty line on stderr
    if wants_progress(args.quiet) and not args.json and console.is_terminal:
        from rich.progress import Progress, SpinnerColumn, TextColumn

        progress = Progress(
            SpinnerColumn(),
            TextColumn("validating: {task.completed} nodes"),
            console=console,
            transient=True,
        )
    if progress is not None:
        with progress:
            task = progress.add_task("validate", total=None)
            report = run_async(
                validate_hierarchy,
                args.url,
                strict=args.strict,
                depth=args.depth,
                on_node=lambda n: progress.update(task, completed=n),
                collect=loose,
                **store_options(args, args.url),
                **request_options(args),
            )
    else:
        report = run_async(
            validate_hierarchy,
            args.url,
            strict=args.strict,
            depth=args.depth,
            collect=loose,
            **store_options(args, args.url),
            **request_options(args),
        )
    known = {p.message for p in report.warnings}
    for text in loose:
        if not any(text in k or k in text for k in known):
            report.problems.append(Problem("warning", "", "", text))
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        for p in report.errors:
            print(p.line())
        if not args.quiet:
            for p in report.warnings:
                print(p.line())
        n_err, n_warn = len(report.errors), len(report.warnings)
        state = "valid" if report.valid else "INVALID"
        strict = " (strict)" if args.strict else ""
        if not args.quiet or not report.valid:
            print(
                f"{report.url}: {state}{strict}: {len(report.nodes)} groups checked, "
                f"{n_err} errors, {n_warn} warnings"
            )
    return EXIT_OK if report.valid else EXIT_INVALID
