"""The tables of an image (``ds.tables``): list, read, write and delete them.

The image's ``tables`` group lists them (``{"tables": [...]}`` in its attributes); each is a
subgroup whose attributes say its ``type`` (``roi_table``, ``masking_roi_table``,
``feature_table``, ...) and ``backend``, as ngio 1.1.3 writes them. Reads take the ``anndata``
(default), ``json``, ``csv`` and ``parquet`` backends (parquet needs pyarrow: the ``tables``
extra). Writes use the ``anndata`` layout (or ``json``, ``csv``, ``parquet``), zarr v2 in an
NGFF 0.4 image, v3 in 0.5.

A write never leaves the listing naming a table whose data is missing: the table's arrays,
then its group's documents, then the listing (``overwrite=True`` first unlists the old table
and deletes its keys). A failed write removes what it wrote.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import anyio
import numpy as np

from .._errors import (
    CodecError,
    ExistsError,
    MetadataError,
    NotFoundError,
    UnsupportedError,
)
from ..meta import write_document
from ..meta._names import check_child_name
from ._anndata import Node, encode_anndata, group_documents, read_anndata, read_nodes
from ._model import ROI_COLUMNS, ROI_TYPES, Roi, Table, rois_to_columns
from ._parquet import arrow_installed, decode_csv_arrow, decode_parquet, encode_parquet
from ._text import decode_csv, decode_json, encode_csv, encode_json, json_documents

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from numpy.typing import ArrayLike, NDArray

    from ..images._dataset import Dataset
    from ..images._plate import Plate
    from ..stores import Buffer

__all__ = ["Tables"]

_ANNDATA = ("anndata", "anndata_v1")
_JSON = ("json", "experimental_json_v1")
_CSV = ("csv", "experimental_csv_v1")
_PARQUET = ("parquet", "experimental_parquet_v1")
_ANNDATA_ATTRS = {"encoding-type": "anndata", "encoding-version": "0.1.0"}


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


class Tables:
    """The tables of an image: ``names()``, ``read(name)``, ``rois(name)``, ``write_rois``,
    ``write_features``, ``write``, ``delete``."""

    def __init__(self, dataset: Dataset | Plate, *, version: str | None = None) -> None:
        """The tables of ``dataset`` (an image, or a plate: then ``version``, its NGFF one)."""
        self._dataset = dataset  # (the dataset keeps these weakly: no cycle)
        self._version = version
        self._lock: anyio.Lock | None = None

    # ------------------------------------------------------------------ where
    @property
    def _v3(self) -> bool:
        version = self._version
        if version is None:
            version = cast("Dataset", self._dataset).metadata.ngff_version
        return version not in ("0.1", "0.2", "0.3", "0.4")

    @property
    def _group(self) -> str:
        return _join(self._dataset.root, "tables")

    @property
    def _listing_key(self) -> str:
        return _join(self._group, "zarr.json" if self._v3 else ".zattrs")

    def _url(self, *parts: str) -> str:
        return "/".join([self._dataset.store.url.rstrip("/"), _join(self._group, *parts)])

    # ------------------------------------------------------------------ reading
    async def names(self, type: str | None = None) -> list[str]:
        """Names of the tables the ``tables`` group lists (empty when there is none);
        ``type``: only those of this type (``"roi_table"``; reads each table's attributes).

        :raises MetadataError: the group's ``tables`` attribute is not a list of names.
        """
        self._dataset._check_open()
        (group,) = await read_nodes(self._dataset.store, [self._group], v3=self._v3)
        if group.kind is None:
            return []
        listed = group.attrs.get("tables", [])
        if not isinstance(listed, list) or not all(isinstance(n, str) for n in listed):
            raise MetadataError(
                f"{self._url()}: 'tables' is not a list of names: {listed!r}", "$.tables"
            )
        if type is None:
            return list(listed)
        nodes = await read_nodes(
            self._dataset.store, [_join(self._group, n) for n in listed], v3=self._v3
        )
        return [n for n, node in zip(listed, nodes, strict=True) if _type_of(node) == type]

    async def _node(self, name: str) -> Node:
        _check_name(name)
        listed = await self.names()
        if name not in listed:
            raise NotFoundError(
                f"no table {name!r} in {self._dataset.url} (tables: {listed})",
                url=self._dataset.store.url,
                key=name,
            )
        (node,) = await read_nodes(self._dataset.store, [_join(self._group, name)], v3=self._v3)
        if node.kind != "group":
            raise NotFoundError(
                f"table {name!r} is listed in {self._url()} but {self._url(name)} is missing",
                url=self._dataset.store.url,
                key=_join(self._group, name),
            )
        return node

    async def read(self, name: str) -> Table:
        """Table ``name``, read whole (row names, columns, type and attributes).

        :raises NotFoundError: no such table listed, or listed but its group is missing.
        :raises UnsupportedError: an unknown ``backend``, or a ``parquet`` table without pyarrow.
        :raises MetadataError: a required column is missing, or the stored data is malformed
            (the table and the key named).
        """
        node = await self._node(name)
        attrs = dict(node.attrs)
        backend = attrs.get("backend", "anndata_v1")
        store, root = self._dataset.store, node.path
        index_key = attrs.get("index_key")
        index_key = index_key if isinstance(index_key, str) else None
        if backend in _ANNDATA:
            stored_key, index, columns, dtypes, in_x = await read_anndata(
                store, root, v3=self._v3, table=name, run=self._dataset._workers.run
            )
            index_key = index_key or stored_key
            if index_key is not None:
                columns.pop(index_key, None)
            x_columns: tuple[str, ...] | None = tuple(k for k in in_x if k in columns)
        elif backend in _JSON or backend in _CSV or backend in _PARQUET:
            columns, dtypes = await self._read_text(name, root, backend)
            index = _pop_index(columns, index_key, name)
            dtypes.pop(index_key or "", None)
            x_columns = None
        else:
            raise UnsupportedError(
                f"table {name!r} ({self._url(name)}) has an unknown backend {backend!r} "
                "(at $.backend; anndata, json, csv and parquet are supported)"
            )
        kind = attrs.get("type")
        kind = kind if isinstance(kind, str) and kind else "generic_table"
        index = _typed_index(index, attrs.get("index_type"), name)
        table = Table(name, kind, index, columns, attrs, index_key, dtypes, x_columns)
        if kind in ROI_TYPES:
            missing = [c for c in ROI_COLUMNS if c not in columns]
            if missing:
                raise MetadataError(
                    f"ROI table {name!r} ({self._url(name)}) lacks the columns {missing}",
                    f"tables/{name}",
                )
        return table

    async def _read_text(
        self, name: str, root: str, backend: str
    ) -> tuple[dict[str, NDArray[Any]], dict[str, str]]:
        store = self._dataset.store
        if backend in _JSON:
            (sub,) = await read_nodes(store, [_join(root, "table")], v3=self._v3)
            if sub.kind is None:
                raise MetadataError(
                    f"json table {name!r} has no 'table' group ({self._url(name, 'table')})",
                    _join(root, "table"),
                )
            return decode_json(sub.attrs, _join(root, "table")), {}
        parquet = backend in _PARQUET
        file = "table.parquet" if parquet else "table.csv"
        key = _join(root, file)
        raw = await store.get(key)
        if raw is None:
            kind = "parquet" if parquet else "csv"
            raise MetadataError(f"{kind} table {name!r} has no {file} ({self._url(name)})", key)
        data = memoryview(raw)  # (pyarrow reads it in place: no copy of the file)
        if not parquet:
            if not arrow_installed():  # the pure reader (pyarrow's rules, 10x slower)
                return decode_csv(bytes(data), key), {}
            if len(data) < _INLINE_BYTES:
                return decode_csv_arrow(data, key, name), {}
            return await self._dataset._workers.run(decode_csv_arrow, data, key, name), {}
        if len(data) < _INLINE_BYTES:
            return decode_parquet(data, key, name)
        return await self._dataset._workers.run(decode_parquet, data, key, name)

    async def rois(self, name: str) -> list[Roi]:
        """The rows of ROI table ``name`` as boxes (see :class:`~ngio_async.tables.Roi`).

        :raises ValueError: the table is no ROI table (its ``type`` named).
        """
        return (await self.read(name)).rois()

    # ------------------------------------------------------------------ writing
    async def write_rois(
        self,
        name: str,
        rois: Iterable[Roi],
        *,
        label: str | None = None,
        overwrite: bool = False,
        backend: str = "anndata",
    ) -> None:
        """Write ROI table ``name`` of ``rois`` (rows named by ``Roi.name``, index
        ``FieldIndex``); with ``label`` (a label image name), a masking ROI table of that
        label image (rows named by ``Roi.label``; ``region.path`` ``../labels/<label>``)."""
        masking = label is not None
        names, columns = rois_to_columns(rois, masking=masking)
        if masking:
            attrs: dict[str, Any] = {
                "index_key": "label",
                "index_type": "int",
                "table_version": "1",
                "type": "masking_roi_table",
                "region": {"path": f"../labels/{label}"},
                "instance_key": "label",
            }
        else:
            attrs = {
                "index_key": "FieldIndex",
                "index_type": "str",
                "table_version": "1",
                "type": "roi_table",
            }
        await self._write(name, names, columns, attrs, overwrite=overwrite, backend=backend)

    async def write_features(
        self,
        name: str,
        columns: Mapping[str, ArrayLike],
        *,
        labels: ArrayLike | None = None,
        label: str | None = None,
        overwrite: bool = False,
        backend: str = "anndata",
    ) -> None:
        """Write feature table ``name``: one row per object, ``labels`` its label values (the
        index, ``label``), ``columns`` the measurements; ``label``: the label image they were
        measured on (``region.path`` ``../labels/<label>``). Without ``labels``, a ``label``
        column of ``columns`` (or a DataFrame's index named ``label``) gives them, as ngio's
        ``FeatureTable(df)`` takes them (``skimage``'s ``regionprops_table`` output as is);
        with none of these, a ``TypeError`` names ``labels=``."""
        if labels is None:
            columns, labels = _labels_of(columns, name)
        index = np.asarray(labels)
        if index.ndim != 1 or index.dtype.kind not in "iu":
            raise TypeError(f"feature table {name!r}: labels must be 1-D integers")
        attrs: dict[str, Any] = {
            "index_key": "label",
            "index_type": "int",
            "table_version": "1",
            "type": "feature_table",
        }
        if label is not None:
            attrs["region"] = {"path": f"../labels/{label}"}
        attrs |= {
            "instance_key": "label",
            "categorical_columns": [],
            "measurement_columns": [],
            "metadata_columns": [],
        }
        dtypes: dict[str, str] = {}
        await self._write(
            name,
            [str(int(v)) for v in index],
            _columns(columns, len(index), name, dtypes),
            attrs,
            overwrite=overwrite,
            backend=backend,
            dtypes=dtypes,
        )

    async def write(
        self,
        name: str,
        table: Table | Mapping[str, ArrayLike],
        *,
        index: Sequence[Any] | None = None,
        index_key: str | None = None,
        type: str | None = None,
        attrs: Mapping[str, Any] | None = None,
        overwrite: bool = False,
        backend: str = "anndata",
    ) -> None:
        """Write table ``name``: a :class:`Table` (read from this or another image: its index,
        columns, type and attributes), or columns (name -> 1-D array) with ``index`` (row
        names; default ``0..n-1``), ``index_key``, ``type`` (default none: a generic table)
        and extra ``attrs``. ROI types need the ROI columns. A pandas DataFrame is columns
        too; its index, when named (``df.set_index("label")``), gives ``index`` and
        ``index_key`` unless they are given."""
        if not isinstance(table, Table) and index is None:
            index, index_key = _frame_index(table, index_key)
        if isinstance(table, Table):
            dtypes = dict(table.dtypes)
            cols = _columns(table.columns, len(table), name, dtypes)
            rows = [str(v) for v in table.index]
            meta = {k: v for k, v in table.attrs.items() if k not in _SYSTEM}
            key = index_key or table.index_key
            if key is not None:
                meta["index_key"] = key
            kind: str | None = type or table.type
        else:
            dtypes = {}
            cols = _columns(table, None, name, dtypes)
            n = len(next(iter(cols.values()))) if cols else len(index or ())
            rows = [str(v) for v in (range(n) if index is None else index)]
            if len(rows) != n:
                raise ValueError(f"table {name!r}: {len(rows)} row names for {n} rows")
            meta = {}
            if index_key is not None:
                meta["index_key"] = index_key
                ints = index is not None and all(_is_int(v) for v in index)
                meta["index_type"] = "int" if ints else "str"
            kind = type
        if attrs:
            meta |= {k: v for k, v in attrs.items() if k not in _SYSTEM}
        if kind is not None and kind != "generic_table":
            meta["table_version"] = meta.get("table_version", "1")
            meta["type"] = kind
        if meta.get("type") in ROI_TYPES:
            missing = [c for c in ROI_COLUMNS if c not in cols]
            if missing:
                raise ValueError(f"ROI table {name!r} lacks the columns {missing}")
        await self._write(
            name, rows, cols, meta, overwrite=overwrite, backend=backend, dtypes=dtypes
        )

    async def delete(self, name: str, *, missing_ok: bool = False) -> None:
        """Unlist table ``name``, then delete its keys.

        :raises NotFoundError: no such table (unless ``missing_ok``).
        """
        ds = self._dataset
        self._check_writable(name, "deleted")
        _check_name(name)
        async with self._locked():
            listed = await self.names()
            if name not in listed:
                if missing_ok:
                    return
                raise NotFoundError(
                    f"no table {name!r} in {ds.url} (tables: {listed})", url=ds.store.url, key=name
                )
            await self._unlist(name)
            await self._delete_keys(name)

    # ------------------------------------------------------------------ internals
    def _check_writable(self, name: str, what: str) -> None:
        """Refuse a write before anything is read or written: the image (or plate) is open
        read-only (the mode named), or its store takes no writes (HTTP)."""
        self._dataset._check_writable()
        store = self._dataset.store
        if not store.supports_writes:
            raise UnsupportedError(
                f"table {name!r} cannot be {what}: {self._dataset.url} is on a read-only store "
                f"({type(store).__name__} takes no writes); nothing was changed"
            )

    def _locked(self) -> anyio.Lock:
        if self._lock is None:
            self._lock = anyio.Lock()
        return self._lock

    async def _delete_keys(self, name: str) -> None:
        store = self._dataset.store
        keys = await store.list_prefix(_join(self._group, name) + "/")
        if keys:
            await store.delete_many(keys)

    async def _encode(
        self,
        name: str,
        index: list[str],
        index_key: str,
        columns: dict[str, NDArray[Any]],
        attrs: dict[str, Any],
        backend: str,
        dtypes: dict[str, str] | None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The objects of table ``name`` (keys below its group) and its group's attributes."""
        if backend in _ANNDATA:
            items = encode_anndata(index, index_key, columns, v3=self._v3, dtypes=dtypes)
            return items, {**_ANNDATA_ATTRS, "backend": "anndata", **attrs}
        if backend in _JSON or backend in _CSV or backend in _PARQUET:
            data: dict[str, Any] = encode_json(columns) if backend in _JSON else columns
            if "index_key" in attrs:  # the row names, as ngio writes them: a column first
                rows: Any = index
                if attrs.get("index_type") == "int":  # parquet: one int64 array, no int objects
                    ints = np.asarray(index, dtype=object).astype(np.int64)
                    rows = ints if backend in _PARQUET else ints.tolist()
                data = {index_key: rows, **data}
            if backend in _JSON:
                items = {_join("table", k): v for k, v in json_documents(data, v3=self._v3).items()}
            elif backend in _CSV:
                items = {"table.csv": encode_csv(data)}
            else:
                encode = encode_parquet
                run = self._dataset._workers.run
                items = {"table.parquet": await run(encode, data, name, dtypes)}
            return items, {"backend": _text_backend(backend), **attrs}
        raise UnsupportedError(
            f"table {name!r}: writing the {backend!r} backend is not supported "
            "(anndata, json, csv and parquet are)"
        )

    async def _write(
        self,
        name: str,
        index: list[str],
        columns: dict[str, NDArray[Any]],
        attrs: dict[str, Any],
        *,
        overwrite: bool,
        backend: str,
        dtypes: dict[str, str] | None = None,
    ) -> None:
        ds = self._dataset
        self._check_writable(name, "written")
        _check_name(name, creating=True)
        for k, col in columns.items():
            if len(col) != len(index):
                raise ValueError(
                    f"table {name!r}: column {k!r} has {len(col)} rows, the index {len(index)}"
                )
        index_key = attrs.get("index_key") or "_index"
        if index_key in columns:
            raise ValueError(f"table {name!r}: column {index_key!r} is also the index key")
        root = _join(self._group, name)
        try:
            items, attrs = await self._encode(
                name, index, index_key, columns, attrs, backend, dtypes
            )
        except (UnicodeEncodeError, CodecError) as exc:
            where = _not_utf8(index, columns)
            if where is None:
                raise
            raise ValueError(
                f"table {name!r}: {where} holds text that is not UTF-8 ({exc}); nothing was written"
            ) from exc
        items = {_join(root, k): v for k, v in items.items()}
        heads = {_join(root, k): v for k, v in group_documents(attrs, v3=self._v3).items()}
        async with self._locked():
            await self._make_room(name, root, overwrite)
            try:
                await _put_all(ds.store, items)
                await _put_all(ds.store, heads)  # the table exists from here on
                listing = await self._list(name)
            except BaseException as exc:
                await _discard(ds.store, root, exc)
                raise
        from ..images._consolidated import update_consolidated

        docs = [(k, v) for k, v in {**items, **heads}.items() if _is_document(k)]
        await update_consolidated(
            ds.store, [*docs, (self._listing_key, listing)], shared=[self._listing_key]
        )

    async def _make_room(self, name: str, root: str, overwrite: bool) -> None:
        store = self._dataset.store
        listed = name in await self.names()
        present = bool(await store.list_prefix(root + "/"))
        if not (listed or present):
            return
        if not overwrite:
            raise ExistsError(
                f"table {name!r} exists in {self._url()} (overwrite=True replaces it)",
                url=store.url,
                key=root,
            )
        if listed:
            await self._unlist(name)
        await self._delete_keys(name)

    async def _edit_listing(self, name: str, remove: bool) -> bytes:
        store, v3, key = self._dataset.store, self._v3, self._listing_key
        if not v3 and not remove and not await store.exists(_join(self._group, ".zgroup")):
            await store.put(_join(self._group, ".zgroup"), b'{"zarr_format":2}')

        async def edited(raw: Buffer | None) -> bytes | None:
            doc = {} if raw is None else _doc(raw, key)
            if v3:
                if raw is None:
                    doc = {"zarr_format": 3, "node_type": "group", "attributes": {}}
                if doc.get("node_type") != "group":
                    raise MetadataError(f"{store.url}/{key} is not a group", "$.node_type")
                attrs = doc.setdefault("attributes", {})
            else:
                attrs = doc
            listed = attrs.get("tables", [])
            if not isinstance(listed, list):
                raise MetadataError(f"{store.url}/{key}: 'tables' is not a list", "$.tables")
            if remove:
                attrs["tables"] = [n for n in listed if n != name]
            elif name not in listed:
                attrs["tables"] = [*listed, name]
            return write_document(doc)

        with anyio.CancelScope(shield=True):
            data = await store.update(key, edited)
        return b"" if data is None else bytes(memoryview(data))

    async def _list(self, name: str) -> bytes:
        return await self._edit_listing(name, remove=False)

    async def _unlist(self, name: str) -> None:
        from ..images._consolidated import update_consolidated

        listing = await self._edit_listing(name, remove=True)
        await update_consolidated(
            self._dataset.store,
            [(self._listing_key, listing)],
            removed=_join(self._group, name),
            shared=[self._listing_key],
        )


#: a parquet file smaller than this decodes on the event loop, a larger one in a worker thread
_INLINE_BYTES = 256 * 1024


def _text_backend(backend: str) -> str:
    return "json" if backend in _JSON else "csv" if backend in _CSV else "parquet"


_SYSTEM = frozenset({"encoding-type", "encoding-version", "backend"})


def _labels_of(
    columns: Mapping[str, ArrayLike], name: str
) -> tuple[Mapping[str, ArrayLike], ArrayLike]:
    """A feature table's label values from a DataFrame's index named ``label``, else from a
    ``label`` column (then left out of the columns)."""
    frame_index = getattr(columns, "index", None)
    if getattr(frame_index, "name", None) == "label" and hasattr(columns, "columns"):
        return columns, np.asarray(frame_index)
    if "label" in columns:
        rest = {k: v for k, v in columns.items() if k != "label"}
        return rest, columns["label"]
    raise TypeError(
        f"feature table {name!r}: give each row's label value, as labels= or as a 'label' "
        f"column (columns: {list(columns)[:10]})"
    )


def _frame_index(table: Any, index_key: str | None) -> tuple[list[Any] | None, str | None]:
    """A DataFrame's named index as row names and their key (an unnamed one: neither)."""
    frame_index = getattr(table, "index", None)
    key = getattr(frame_index, "name", None)
    if frame_index is None or not isinstance(key, str) or not hasattr(table, "columns"):
        return None, index_key
    return [_plain(v) for v in frame_index.tolist()], index_key or key


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)


def _is_document(key: str) -> bool:
    return key.rsplit("/", 1)[-1] in ("zarr.json", ".zarray", ".zgroup", ".zattrs")


def _doc(raw: Any, key: str) -> dict[str, Any]:
    from ..meta import read_document

    doc = read_document(raw)
    if not isinstance(doc, dict):
        raise MetadataError(f"{key} is not a JSON object", key)
    return doc


def _type_of(node: Node) -> str | None:
    if node.kind is None:
        return None
    kind = node.attrs.get("type")
    return kind if isinstance(kind, str) and kind else "generic_table"


def _check_name(name: str, *, creating: bool = False) -> None:
    check_child_name(name, "table", creating=creating)


def _columns(
    columns: Mapping[str, ArrayLike], rows: int | None, name: str, dtypes: dict[str, str]
) -> dict[str, NDArray[Any]]:
    """The columns as 1-D numpy arrays; ``dtypes`` gets the pandas dtype of those given as
    pandas categorical or nullable columns (``category``, ``Int64``, ``boolean``, ``string``).
    In ``object`` columns (strings; with a missing value, integers or booleans too) a missing
    value (``None``, ``NaN``, ``pd.NA``) becomes ``None``."""
    out: dict[str, NDArray[Any]] = {}
    for k, v in columns.items():
        if not isinstance(k, str) or not k or "/" in k:
            raise ValueError(f"table {name!r}: invalid column name {k!r}")
        given = str(getattr(v, "dtype", ""))
        if given in _PANDAS_DTYPES or given.lstrip("U").startswith("Int"):
            dtypes.setdefault(k, given)
        arr = np.asarray(v)
        if arr.dtype.kind in "US":
            arr = arr.astype(str).astype(object)
        if arr.ndim != 1:
            raise ValueError(f"table {name!r}: column {k!r} is not 1-D (shape {arr.shape})")
        if arr.dtype.kind not in "biufO":
            raise TypeError(f"table {name!r}: column {k!r} of dtype {arr.dtype} is not supported")
        nullable = dtypes.get(k) == "boolean" or "Int" in dtypes.get(k, "")
        if nullable and arr.dtype.kind == "f":  # pandas gives NaN for a missing value
            cast = bool if dtypes[k] == "boolean" else int
            arr = np.asarray([None if np.isnan(x) else cast(x) for x in arr], dtype=object)
        if arr.dtype == object:
            arr = _object_column(arr, k, name)
        if rows is not None and len(arr) != rows:
            raise ValueError(f"table {name!r}: column {k!r} has {len(arr)} rows, not {rows}")
        out[k] = arr
    return out


_PANDAS_DTYPES = frozenset({"category", "boolean", "string"})


def _object_column(arr: NDArray[Any], column: str, name: str) -> NDArray[Any]:
    """Strings, or with a missing value (as ``None``) strings, integers or booleans."""
    values = arr.tolist()
    if set(map(type, values)) <= {str}:  # plain strings (the usual case): nothing to convert
        return arr.copy()
    values = [_plain(x) for x in values]
    present = [x for x in values if x is not None]
    strings = all(isinstance(x, str) for x in present)
    ints = all(isinstance(x, int) for x in present)  # booleans too
    if not (strings or (ints and len(present) < len(values))):
        raise TypeError(
            f"table {name!r}: column {column!r} holds objects that are not strings "
            "(or integers or booleans with missing values)"
        )
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _plain(value: Any) -> Any:
    """A cell of an object column: a Python value, a missing one as ``None``."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if type(value).__name__ == "NAType":  # pandas.NA
        return None
    return value


def _pop_index(columns: dict[str, NDArray[Any]], index_key: str | None, name: str) -> NDArray[Any]:
    if index_key is None:
        n = len(next(iter(columns.values()))) if columns else 0
        return np.arange(n)
    if index_key not in columns:
        raise MetadataError(f"table {name!r} has no index column {index_key!r}", "$.index_key")
    return columns.pop(index_key)


def _typed_index(index: NDArray[Any], index_type: Any, name: str) -> NDArray[Any]:
    if index_type == "int":
        if index.dtype.kind in "iu":  # already integers (parquet, json, csv)
            return index.astype(np.int64, copy=False)
        try:
            return np.asarray([int(v) for v in index], dtype=np.int64)
        except (TypeError, ValueError) as exc:
            raise MetadataError(
                f"table {name!r}: index_type is int but the row names are not ({exc})",
                "$.index_type",
            ) from None
    if index.dtype.kind in "iu" and index_type is None:
        return index
    out = np.empty(len(index), dtype=object)
    out[:] = [str(v) for v in index]
    return out


async def _put_all(store: Any, items: Mapping[str, bytes]) -> None:
    """Put ``items`` concurrently; every put ends (none cancelled by another's failure, so
    none lands after a cleanup), then the first failure is raised."""
    errors: list[Exception] = []

    async def put(key: str, data: bytes) -> None:
        try:
            await store.put(key, data)
        except Exception as exc:  # noqa: BLE001 - raised below, after the others ended
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for key, data in items.items():
            tg.start_soon(put, key, data)
    if errors:
        raise errors[0]


async def _discard(store: Any, root: str, exc: BaseException) -> None:
    """Delete every key below ``root`` (a table whose write failed with ``exc``): also those
    of puts cancelled after they landed."""
    with anyio.CancelScope(shield=True):
        try:
            keys = await store.list_prefix(root + "/")
            if keys:
                await store.delete_many(sorted(keys, key=_is_document, reverse=True))
        except Exception as cleanup:  # noqa: BLE001 - reported on exc
            exc.add_note(
                f"the keys written so far below {root} could not be removed ({cleanup}); "
                "write the table again with overwrite=True"
            )


def _not_utf8(index: list[str], columns: dict[str, NDArray[Any]]) -> str | None:
    """Where the first text that UTF-8 cannot encode is (``"column 's' row 3"``), if any:
    looked for once an encoding failed (no test per value otherwise)."""

    def bad(values: Any) -> int | None:
        for i, v in enumerate(values):
            if isinstance(v, str):
                try:
                    v.encode()
                except UnicodeEncodeError:
                    return i
        return None

    row = bad(index)
    if row is not None:
        return f"the index row {row}"
    for key, col in columns.items():
        if col.dtype.kind in "OU":
            row = bad(col.tolist())
            if row is not None:
                return f"column {key!r} row {row}"
    return None
