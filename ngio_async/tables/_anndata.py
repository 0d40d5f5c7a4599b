"""The AnnData-on-zarr layout of a table (ngio's default ``anndata`` backend).

A table group holds ``obs`` (a dataframe: the row index and the string, integer, boolean and
categorical columns), ``X`` (a 2-D float array: the number columns, named by ``var``'s index)
and empty ``layers``, ``obsm``, ``obsp``, ``uns``, ``varm``, ``varp`` groups; every node names
its ``encoding-type``. Columns read in ngio's order: those of ``X``, then ``obs``'s.

Reading goes through the store API only (documents, then chunks, a few batched requests);
encoding is pure: it returns the documents and chunks to write.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from .._errors import CodecError, MetadataError, UnsupportedError, name_store
from ..meta import read_document, write_document
from ._zarr import encode_table_array, parse_table_array

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from numpy.typing import NDArray

    from ..stores import AsyncStore
    from ._zarr import TableArray

__all__ = ["Node", "encode_anndata", "read_anndata", "read_nodes"]

Run: TypeAlias = "Callable[..., Awaitable[Any]]"

#: chunks of more bytes than this decode in a worker thread (not on the event loop)
_INLINE_BYTES = 256 << 10
_EMPTY_GROUPS = ("layers", "obsm", "obsp", "uns", "varm", "varp")
_DICT = {"encoding-type": "dict", "encoding-version": "0.1.0"}
_ARRAY = {"encoding-type": "array", "encoding-version": "0.2.0"}
_STRINGS = {"encoding-type": "string-array", "encoding-version": "0.2.0"}


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


class Node:
    """One zarr node's documents: ``kind`` ``"array"``, ``"group"`` or ``None`` (absent)."""

    def __init__(self, path: str, kind: str | None, meta: dict[str, Any], attrs: dict[str, Any]):
        self.path = path
        self.kind = kind
        self.meta = meta
        self.attrs = attrs

    @property
    def encoding(self) -> str | None:
        enc = self.attrs.get("encoding-type")
        return enc if isinstance(enc, str) else None


def _object(raw: Any, key: str) -> dict[str, Any]:
    try:
        doc = read_document(raw)
    except Exception as exc:
        raise MetadataError(f"{key} is not JSON: {exc}", key) from exc
    if not isinstance(doc, dict):
        raise MetadataError(f"{key} is not a JSON object", key)
    return doc


async def read_nodes(store: AsyncStore, paths: Sequence[str], *, v3: bool) -> list[Node]:
    """The documents of the nodes at ``paths`` (one batched request)."""
    names = ("zarr.json",) if v3 else (".zarray", ".zgroup", ".zattrs")
    keys = [_join(p, n) for p in paths for n in names]
    found = await store.get_many(keys)
    out = []
    for i, path in enumerate(paths):
        raws = found[i * len(names) : (i + 1) * len(names)]
        if v3:
            if raws[0] is None:
                out.append(Node(path, None, {}, {}))
                continue
            doc = _object(raws[0], _join(path, "zarr.json"))
            kind = doc.get("node_type")
            attrs = doc.get("attributes") or {}
            out.append(Node(path, kind if kind in ("array", "group") else None, doc, attrs))
            continue
        zarray, zgroup, zattrs = raws
        attrs = {} if zattrs is None else _object(zattrs, _join(path, ".zattrs"))
        if zarray is not None:
            out.append(Node(path, "array", _object(zarray, _join(path, ".zarray")), attrs))
        elif zgroup is not None or zattrs is not None:
            out.append(Node(path, "group", {}, attrs))
        else:
            out.append(Node(path, None, {}, {}))
    return out


async def _read_arrays(
    store: AsyncStore, nodes: Sequence[Node], run: Run | None = None
) -> list[NDArray[Any]]:
    """The values of array ``nodes`` (every chunk in one batched request; decoded by ``run``,
    in a worker thread, when they are large)."""
    specs: list[TableArray] = []
    for node in nodes:
        if node.kind != "array":
            raise MetadataError(f"{node.path} is not a zarr array", node.path)
        specs.append(parse_table_array(node.meta, node.path))
    keys = [[_join(s.path, k) for k in s.chunk_keys()] for s in specs]
    flat = await store.get_many([k for ks in keys for k in ks])
    out, pos = [], 0
    for spec, ks in zip(specs, keys, strict=True):
        got = flat[pos : pos + len(ks)]
        pos += len(ks)
        chunks = {k: g for k, g in zip(spec.chunk_keys(), got, strict=True) if g is not None}
        size = sum(len(memoryview(g)) for g in chunks.values())
        try:
            if run is not None and size > _INLINE_BYTES:
                out.append(await run(spec.assemble, chunks))
            else:
                out.append(spec.assemble(chunks))
        except CodecError as exc:  # (the codecs name the key only)
            name_store(exc, store.url)
            raise
    return out


async def _read_elements(
    store: AsyncStore,
    paths: Sequence[str],
    *,
    v3: bool,
    table: str,
    run: Run | None = None,
    dtypes: list[str | None] | None = None,
) -> list[NDArray[Any]]:
    """1-D anndata elements (``array``, ``string-array``, ``categorical``, ``nullable-*``);
    ``dtypes`` gets the pandas dtype of each (``category``, ``Int64``, ``boolean``,
    ``string``; ``None``: its numpy one)."""
    nodes = await read_nodes(store, paths, v3=v3)
    for node in nodes:
        if node.kind is None:
            raise MetadataError(f"table {table!r}: {node.path} is missing", node.path)
    plain = [n for n in nodes if n.kind == "array"]
    groups = [n for n in nodes if n.kind == "group"]
    parts: list[str] = []
    for g in groups:
        enc = g.encoding
        if enc == "categorical":
            parts += [_join(g.path, "codes"), _join(g.path, "categories")]
        elif enc in ("nullable-integer", "nullable-boolean", "nullable-string-array"):
            parts += [_join(g.path, "values"), _join(g.path, "mask")]
        else:
            raise UnsupportedError(
                f"table {table!r}: column {g.path} has encoding {enc!r}, not supported"
            )
    sub = await read_nodes(store, parts, v3=v3) if parts else []
    for node in sub:
        if node.kind is None:
            raise MetadataError(f"table {table!r}: {node.path} is missing", node.path)
    values = await _read_arrays(store, [*plain, *sub], run)
    by_path = {n.path: v for n, v in zip([*plain, *sub], values, strict=True)}
    out = []
    for node in nodes:
        dtype = None
        if node.kind == "array":
            out.append(by_path[node.path])
        elif node.encoding == "categorical":
            codes = by_path[_join(node.path, "codes")]
            cats = by_path[_join(node.path, "categories")]
            out.append(_categorical(codes, cats, node.path))
            dtype = "category"
        else:
            vals = by_path[_join(node.path, "values")]
            mask = by_path[_join(node.path, "mask")].astype(bool)
            out.append(_masked(vals, mask))
            dtype = _NULLABLE.get(node.encoding or "") or _nullable_int(vals.dtype)
        if dtypes is not None:
            dtypes.append(dtype)
    return out


#: the pandas dtype of anndata's nullable columns (integers: by their values' dtype)
_NULLABLE = {"nullable-boolean": "boolean", "nullable-string-array": "string"}


def _nullable_int(dtype: np.dtype[Any]) -> str | None:
    if dtype.kind not in "iu":
        return None
    return f"{'U' if dtype.kind == 'u' else ''}Int{dtype.itemsize * 8}"


def _categorical(codes: NDArray[Any], cats: NDArray[Any], path: str) -> NDArray[Any]:
    codes = codes.astype(np.int64)
    if codes.size and (codes.max() >= len(cats) or codes.min() < -1):
        raise MetadataError(f"categorical {path} has codes outside its categories", path)
    out = np.empty(codes.shape, dtype=object)
    out[...] = [None if c < 0 else cats[c] for c in codes.reshape(-1)]
    if cats.dtype != object and not (codes < 0).any():
        return out.astype(cats.dtype)
    if cats.dtype.kind == "f":
        return np.where(codes < 0, np.nan, out).astype(cats.dtype)
    return out


def _masked(values: NDArray[Any], mask: NDArray[Any]) -> NDArray[Any]:
    if not mask.any():
        return values
    if values.dtype.kind == "f":
        return np.where(mask, np.nan, values)
    out = values.astype(object)
    out[mask] = None
    return out


async def read_anndata(
    store: AsyncStore, root: str, *, v3: bool, table: str, run: Run | None = None
) -> tuple[str | None, NDArray[Any], dict[str, NDArray[Any]], dict[str, str], tuple[str, ...]]:
    """The index name, row names, columns, the columns' pandas dtypes (those numpy has none
    for: categorical, nullable) and the names of those of ``X`` of the AnnData table at
    ``root``."""
    obs, x, var = await read_nodes(
        store, [_join(root, "obs"), _join(root, "X"), _join(root, "var")], v3=v3
    )
    if obs.kind != "group":
        raise MetadataError(f"table {table!r} has no obs group ({obs.path})", obs.path)
    index_name = obs.attrs.get("_index")
    order = obs.attrs.get("column-order", [])
    if not isinstance(index_name, str) or not isinstance(order, list):
        raise MetadataError(
            f"table {table!r}: {obs.path} lacks '_index' or 'column-order'", obs.path
        )
    paths = [_join(obs.path, index_name), *(_join(obs.path, str(c)) for c in order)]
    columns: dict[str, NDArray[Any]] = {}
    in_x: tuple[str, ...] = ()
    if x.kind is not None:
        if x.encoding not in (None, "array"):
            raise UnsupportedError(
                f"table {table!r}: X has encoding {x.encoding!r} (only dense arrays)"
            )
        var_index = var.attrs.get("_index", "_index") if var.kind == "group" else "_index"
        (matrix,) = await _read_arrays(store, [x], run)
        (names,) = await _read_elements(store, [_join(var.path, var_index)], v3=v3, table=table)
        if matrix.ndim != 2 or matrix.shape[1] != len(names):
            raise MetadataError(
                f"table {table!r}: X of shape {matrix.shape} for {len(names)} var names", x.path
            )
        for j, name in enumerate(names):
            columns[str(name)] = np.ascontiguousarray(matrix[:, j])
        in_x = tuple(columns)
    kinds: list[str | None] = []
    index, *values = await _read_elements(store, paths, v3=v3, table=table, run=run, dtypes=kinds)
    dtypes = {str(k): d for k, d in zip(order, kinds[1:], strict=True) if d is not None}
    for name, value in zip(order, values, strict=True):
        if len(value) != len(index):
            raise MetadataError(
                f"table {table!r}: column {name!r} has {len(value)} rows, the index {len(index)}",
                _join(obs.path, str(name)),
            )
        columns[str(name)] = value
    if x.kind is not None and columns and len(next(iter(columns.values()))) != len(index):
        raise MetadataError(f"table {table!r}: X and obs have different row counts", x.path)
    return (index_name if index_name != "_index" else None), index, columns, dtypes, in_x


# ---------------------------------------------------------------------------------- writing
def _group(attrs: Mapping[str, Any], *, v3: bool) -> dict[str, bytes]:
    if v3:
        doc = {"attributes": dict(attrs), "zarr_format": 3, "node_type": "group"}
        return {"zarr.json": write_document(doc)}
    return {".zgroup": b'{"zarr_format":2}', ".zattrs": write_document(dict(attrs))}


def _array(values: NDArray[Any], attrs: Mapping[str, Any], *, v3: bool) -> dict[str, bytes]:
    doc, chunks = encode_table_array(values, attrs, v3=v3)
    if v3:
        return {"zarr.json": doc, **chunks}
    return {".zarray": doc, ".zattrs": write_document(dict(attrs)), **chunks}


def _under(prefix: str, items: Mapping[str, bytes]) -> dict[str, bytes]:
    return {_join(prefix, k): v for k, v in items.items()}


def _obs_column(
    col: NDArray[Any], dtype: str | None, *, v3: bool, natural: bool = False
) -> dict[str, bytes]:
    """An ``obs`` column as anndata writes it: ``categorical`` (a ``category`` column, or
    strings with missing values), ``nullable-integer`` / ``nullable-boolean`` (an ``Int64``
    or ``boolean`` column, or integers / booleans with missing values), else a plain array.
    ``natural``: categories in natural order (anndata's for strings it made categorical)."""
    if col.dtype != object and dtype not in ("category",) and not _is_nullable(dtype):
        return _array(col, _ARRAY, v3=v3)
    values = col.tolist()
    present = [v for v in values if v is not None]
    missing = len(present) != len(values)
    if dtype == "category" or (missing and all(isinstance(v, str) for v in present)):
        return _categorical_items(values, present, v3=v3, natural=natural)
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in present)
    bools = all(isinstance(v, bool) for v in present)
    if (_is_nullable(dtype) or missing) and (ints or bools):
        boolean = bools and dtype != "Int64" and (dtype == "boolean" or bool(present))
        kind = np.dtype(bool) if boolean else _int_dtype(dtype)
        mask = np.asarray([v is None for v in values], dtype=bool)
        data = np.asarray([False if v is None else v for v in values], dtype=kind)
        enc = "nullable-boolean" if boolean else "nullable-integer"
        out = _group({"encoding-type": enc, "encoding-version": "0.1.0"}, v3=v3)
        out |= _under("values", _array(data, _ARRAY, v3=v3))
        return out | _under("mask", _array(mask, _ARRAY, v3=v3))
    return _array(col, _STRINGS if col.dtype == object else _ARRAY, v3=v3)


def _repeats_strings(col: NDArray[Any]) -> bool:
    """Whether anndata's ``strings_to_categoricals`` (run by every anndata write, thus ngio's)
    stores ``col`` as categorical: strings (missing values aside) with fewer distinct values
    than rows."""
    if col.dtype != object:
        return False
    present = [v for v in col.tolist() if v is not None]
    return (
        bool(present) and all(isinstance(v, str) for v in present) and len(set(present)) < len(col)
    )


def _natural(value: Any) -> tuple[Any, ...]:
    """natsort's order of strings: runs of decimal digits, and digits such as ``'²'`` alone,
    compared as numbers, before other text; equal keys (``'02'``, ``'2'``) in code point
    order, as natsort keeps pandas' sorted categories."""
    key: list[tuple[int, int, str]] = []
    text = ""
    for token in re.findall(r"\d+|.", str(value), flags=re.DOTALL):
        if token.isdigit():
            if text:
                key.append((1, 0, text))
                text = ""
            key.append((0, int(token) if token.isdecimal() else unicodedata.digit(token), ""))
        else:
            text += token
    if text:
        key.append((1, 0, text))
    return (tuple(key), str(value))


def _is_nullable(dtype: str | None) -> bool:
    return dtype is not None and (dtype == "boolean" or "Int" in dtype)


def _int_dtype(dtype: str | None) -> np.dtype[Any]:
    if dtype is None or "Int" not in dtype:
        return np.dtype(np.int64)
    return np.dtype(dtype.lower())  # "UInt16" -> uint16


def _categorical_items(
    values: list[Any], present: list[Any], *, v3: bool, natural: bool = False
) -> dict[str, bytes]:
    order = _natural if natural else lambda v: (str(type(v)), v)
    cats = sorted(set(present), key=order)
    where = {c: i for i, c in enumerate(cats)}
    codes_dtype = np.int8 if len(cats) < 128 else np.int16 if len(cats) < 32768 else np.int32
    codes = np.asarray([-1 if v is None else where[v] for v in values], dtype=codes_dtype)
    if all(isinstance(c, str) for c in cats):
        categories, attrs = np.asarray(cats, dtype=object), _STRINGS
    else:
        categories, attrs = np.asarray(cats), _ARRAY
    group = {"encoding-type": "categorical", "encoding-version": "0.2.0", "ordered": False}
    out = _group(group, v3=v3)
    out |= _under("codes", _array(codes, _ARRAY, v3=v3))
    return out | _under("categories", _array(categories, attrs, v3=v3))


def encode_anndata(
    index: Sequence[str],
    index_key: str,
    columns: Mapping[str, NDArray[Any]],
    *,
    v3: bool,
    dtypes: Mapping[str, str] | None = None,
) -> dict[str, bytes]:
    """The documents and chunks (keys relative to the table group) of a table in the layout
    ngio 1.1.3 writes, except the table group's own documents: float columns in ``X``
    (float64 if their types differ), the others in ``obs`` (categorical and nullable ones as
    anndata encodes them: see :func:`_obs_column`; ``dtypes``: their pandas dtypes); row
    names as strings."""
    dtypes = dtypes or {}
    floats = [
        k
        for k, v in columns.items()
        if v.dtype.kind == "f" and dtypes.get(k) != "category" and not _is_nullable(dtypes.get(k))
    ]
    others = [k for k in columns if k not in floats]
    n = len(index)
    out: dict[str, bytes] = {}
    if floats:
        kinds = {columns[k].dtype for k in floats}
        dtype = kinds.pop() if len(kinds) == 1 else np.dtype(np.float64)
        matrix = np.stack([columns[k].astype(dtype) for k in floats], axis=1)
    else:
        matrix = np.zeros((n, 0), dtype=np.float64)
    out |= _under("X", _array(matrix, _ARRAY, v3=v3))
    for g in _EMPTY_GROUPS:
        out |= _under(g, _group(_DICT, v3=v3))
    obs_attrs = {
        "column-order": others,
        "_index": index_key,
        "encoding-type": "dataframe",
        "encoding-version": "0.2.0",
    }
    out |= _under("obs", _group(obs_attrs, v3=v3))
    out |= _under(f"obs/{index_key}", _array(np.asarray(index, dtype=object), _STRINGS, v3=v3))
    for k in others:
        # anndata writes repeated strings as categorical (its strings_to_categoricals, pandas
        # "string" columns too): ngio's tables read them back so
        inferred = dtypes.get(k) in (None, "string") and _repeats_strings(columns[k])
        kind = "category" if inferred else dtypes.get(k)
        out |= _under(f"obs/{k}", _obs_column(columns[k], kind, v3=v3, natural=inferred))
    var_attrs = {
        "column-order": [],
        "_index": "_index",
        "encoding-type": "dataframe",
        "encoding-version": "0.2.0",
    }
    out |= _under("var", _group(var_attrs, v3=v3))
    names = np.asarray(floats, dtype=object)
    out |= _under("var/_index", _array(names, _STRINGS, v3=v3))
    return out


def group_documents(attrs: Mapping[str, Any], *, v3: bool) -> dict[str, bytes]:
    """The table group's own documents (written last: the table exists once they do)."""
    return _group(attrs, v3=v3)
