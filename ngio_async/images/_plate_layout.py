"""A plate's layout, pure: its wells (:class:`PlateWell`), the names of rows, columns and wells,
acquisitions as JSON, the pending layout of a plate without fields (under the non-NGFF
``ngio_async`` attribute), and the plan of a new plate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import MetadataError
from ..meta import Acquisition, Plate as PlateMeta, Well, WellImage, validate
from ..meta._validate import _UNVERSIONED
from ..meta.zarr import encode_group_v2, encode_group_v3

if TYPE_CHECKING:
    from ..stores import AsyncStore


#: the non-NGFF attribute holding the layout of a plate that has no field yet
PENDING_KEY = "ngio_async"


AcquisitionSpec = int | Mapping[str, Any] | Acquisition


WellSpec = str | tuple[str | int, str | int]


@dataclass(frozen=True, slots=True)
class PlateWell:
    """One well of a plate: ``path`` (``"A/1"``), ``row``, ``column`` and its fields of view.

    ``only_acquisition``: the id of its plate's acquisition when the plate has exactly one
    (its fields that name no acquisition are that one's: NGFF requires the id only when a
    plate has several); ``None`` when it has none or several, or the well was read without
    its plate (:func:`~ngio_async.open_well_async`).
    """

    path: str
    row: str
    column: str
    metadata: Well
    only_acquisition: int | None = None

    @property
    def images(self) -> list[WellImage]:
        """The fields of view (``path``, ``acquisition``), in metadata order."""
        return list(self.metadata.images)

    @property
    def fields(self) -> list[str]:
        """The field paths, in metadata order."""
        return [im.path for im in self.metadata.images]

    def field_paths(self, acquisition: int | None = None) -> list[str]:
        """The field paths, all or those of one ``acquisition``, in metadata order. In a plate
        of one acquisition the fields that name none are that acquisition's (see
        ``only_acquisition``), as :meth:`Plate.image_paths` takes them; ngio's
        ``paths(acquisition)`` leaves them out."""
        return [
            im.path
            for im in self.metadata.images
            if acquisition is None
            or im.acquisition == acquisition
            or (im.acquisition is None and acquisition == self.only_acquisition)
        ]


def _where(store: AsyncStore, root: str) -> str:
    return f"{store.url.rstrip('/')}/{root}" if root else store.url


def _ngff_attrs(body: dict[str, Any], key: str, version: str) -> dict[str, Any]:
    """The NGFF attributes ``{key: body}`` of ``version`` (what :func:`validate` takes)."""
    if version == "0.4":
        return {key: {**body, "version": "0.4"}}
    return {"ome": {"version": version, key: body}}


def _pending_meta(body: Any, version: str, where: str, unversioned: bool = False) -> PlateMeta:
    """The :class:`~ngio_async.meta.Plate` of a pending layout (every rule checked; no wells);
    ``unversioned``: of a 0.4 plate stored without ``version`` (marked as decoded so)."""
    from msgspec.structs import replace

    try:
        row, column = body["rows"][0]["name"], body["columns"][0]["name"]
        probe = {**body, "wells": [{"path": f"{row}/{column}", "rowIndex": 0, "columnIndex": 0}]}
    except (KeyError, IndexError, TypeError):
        raise MetadataError(
            f"{where}: the pending plate layout needs 'rows' and 'columns'",
            f"$.{PENDING_KEY}.plate",
        ) from None
    try:
        plate = validate(_ngff_attrs(probe, "plate", version), kind="plate").plate
    except MetadataError as exc:
        raise MetadataError(f"{where}: pending plate layout: {exc.rule}", exc.path) from None
    assert plate is not None
    plate = replace(plate, wells=[])
    if unversioned and version == "0.4":
        plate.extra[_UNVERSIONED] = True
    return plate


def _name(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"{what}: expected a name (str or int), got {value!r}")
    text = str(value)
    if not text.isascii() or not text.isalnum():
        raise ValueError(f"{what} {text!r}: names are letters and digits only")
    return text


def _split_well(row: Any, column: Any) -> tuple[str, str]:
    """``("A", "1")`` from ``("A", "1")``, ``("A", 1)`` or ``("A/1", None)``."""
    if column is None:
        if isinstance(row, tuple) and len(row) == 2:
            row, column = row
        elif isinstance(row, str) and row.count("/") == 1:
            row, column = row.split("/")
        else:
            raise ValueError(f"a well is 'row/column' or (row, column), got {row!r}")
    elif isinstance(row, str) and "/" in row:  # image(*pair) of image_paths(): (well, field)
        raise ValueError(
            f"{row!r} is a well path, so {column!r} cannot be its column: give the well as "
            f"'row/column' or as row, column, and the field by name (field={column!r})"
        )
    return _name(row, "row"), _name(column, "column")


def _acquisition_json(spec: AcquisitionSpec, i: int) -> dict[str, Any]:
    from ..meta._base import dump

    if isinstance(spec, Acquisition):
        out: dict[str, Any] = dump(spec)
        return out
    if isinstance(spec, Mapping):
        return dict(spec)
    if isinstance(spec, int) and not isinstance(spec, bool):
        return {"id": spec}
    raise TypeError(f"acquisitions[{i}]: expected an id, a dict or an Acquisition, got {spec!r}")


def _group_doc(v3: bool) -> list[tuple[str, bytes]]:
    return [("zarr.json", encode_group_v3())] if v3 else [(".zgroup", encode_group_v2())]


def _directory_name(url: Any, root: str) -> str | None:
    """The last path component of ``url`` (a path, URL or store) and ``root``, without
    ``.zarr`` / ``.ome.zarr``; ``None`` when there is none (a bucket, ``memory://``)."""
    text = root or str(url if isinstance(url, str) else getattr(url, "url", url))
    if "://" in text:
        text = text.split("://", 1)[1].partition("/")[2]  # not the bucket or host
    last = text.rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".ome.zarr", ".zarr"):
        if last.lower().endswith(suffix):
            last = last[: -len(suffix)]
            break
    return last or None


def _plan_plate(
    rows: Sequence[str | int],
    columns: Sequence[str | int],
    wells: Sequence[WellSpec] | None,
    acquisitions: Sequence[AcquisitionSpec] | None,
    name: str | None,
    ngff_version: str,
    field_count: int | None,
) -> tuple[dict[str, Any], list[str], PlateMeta]:
    """The pending plate body, the declared well paths and the plate model (pure; every rule
    checked)."""
    if ngff_version not in ("0.4", "0.5"):
        raise ValueError(f"ngff_version must be '0.4' or '0.5', got {ngff_version!r}")
    if isinstance(rows, str | int) or isinstance(columns, str | int):
        raise TypeError("rows and columns are sequences of names, e.g. ['A', 'B'], ['1', '2']")
    row_names = [_name(r, f"rows[{i}]") for i, r in enumerate(rows)]
    col_names = [_name(c, f"columns[{i}]") for i, c in enumerate(columns)]
    if not row_names or not col_names:
        raise ValueError("a plate needs at least one row and one column")
    body: dict[str, Any] = {
        "rows": [{"name": r} for r in row_names],
        "columns": [{"name": c} for c in col_names],
    }
    if acquisitions is not None:
        body["acquisitions"] = [_acquisition_json(a, i) for i, a in enumerate(acquisitions)]
        for a in body["acquisitions"]:  # NGFF's strict schema wants a name
            if a.get("name") is None and isinstance(a.get("id"), int):
                a["name"] = str(a["id"])
    if field_count is not None:
        if isinstance(field_count, bool) or not isinstance(field_count, int) or field_count < 1:
            raise ValueError(f"field_count must be an int >= 1, got {field_count!r}")
        body["field_count"] = field_count
    if name is not None:
        body["name"] = str(name)
    if wells is None:
        declared = [f"{r}/{c}" for r in row_names for c in col_names]
    else:
        declared = []
        for w in wells:
            r, c = _split_well(w, None)
            if r not in row_names or c not in col_names:
                raise ValueError(f"well '{r}/{c}' is not in the plate's rows and columns")
            if f"{r}/{c}" in declared:
                raise ValueError(f"well '{r}/{c}' is given twice")
            declared.append(f"{r}/{c}")
    metadata = _pending_meta(body, ngff_version, "plate")  # raises MetadataError (JSON path)
    return {**body, "wells": []}, declared, metadata
