"""Hypothesis strategies for valid NGFF 0.4 / 0.5 documents, in the canonical form ``to_attrs`` writes."""

from __future__ import annotations

import string
from typing import Any

from hypothesis import strategies as st

finite = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)
names = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=4)
SPACE_UNITS = ["micrometer", "nanometer", "millimeter", "meter", "angstrom"]


@st.composite
def axes(draw: st.DrawFn) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if draw(st.booleans()):
        out.append(
            {"name": "t", "type": "time", "unit": draw(st.sampled_from(["second", "millisecond"]))}
        )
    if draw(st.booleans()):
        out.append({"name": "c", "type": "channel"})
    n_space = draw(st.integers(2, 3))
    unit = draw(st.sampled_from(SPACE_UNITS))
    out += [{"name": n, "type": "space", "unit": unit} for n in ["z", "y", "x"][3 - n_space :]]
    return out


@st.composite
def multiscale(draw: st.DrawFn, version: str) -> dict[str, Any]:
    ax = draw(axes())
    nd = len(ax)
    datasets = []
    for i in range(draw(st.integers(1, 4))):
        ts: list[dict[str, Any]] = [
            {"type": "scale", "scale": draw(st.lists(finite, min_size=nd, max_size=nd))}
        ]
        if draw(st.booleans()):
            ts.append(
                {
                    "type": "translation",
                    "translation": draw(st.lists(finite, min_size=nd, max_size=nd)),
                }
            )
        datasets.append({"path": str(i), "coordinateTransformations": ts})
    ms: dict[str, Any] = {"axes": ax, "datasets": datasets}
    if draw(st.booleans()):
        ms["name"] = draw(names)
    if draw(st.booleans()):
        ms["type"] = draw(st.sampled_from(["mean", "gaussian", "nearest"]))
    if draw(st.booleans()):
        ms["metadata"] = {"method": "custom", "kwargs": {"order": draw(st.integers(0, 3))}}
    if version == "0.4":
        ms["version"] = "0.4"
    return ms


@st.composite
def omero(draw: st.DrawFn) -> dict[str, Any]:
    channels = []
    for _ in range(draw(st.integers(1, 4))):
        lo = draw(st.floats(0, 100))
        hi = lo + draw(st.floats(1, 1000))
        ch: dict[str, Any] = {
            "color": draw(st.text(alphabet="0123456789ABCDEF", min_size=6, max_size=6)),
            "window": {"min": lo, "max": hi, "start": lo, "end": hi},
        }
        if draw(st.booleans()):
            ch["label"] = draw(names)
        if draw(st.booleans()):
            ch["active"] = draw(st.booleans())
        channels.append(ch)
    return {"channels": channels}


@st.composite
def plate(draw: st.DrawFn, version: str) -> dict[str, Any]:
    rows = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    cols = draw(st.lists(st.integers(1, 24).map(str), min_size=1, max_size=4, unique=True))
    cells = draw(
        st.lists(
            st.tuples(st.integers(0, len(rows) - 1), st.integers(0, len(cols) - 1)),
            min_size=1,
            max_size=6,
            unique=True,
        )
    )
    p: dict[str, Any] = {
        "rows": [{"name": r} for r in rows],
        "columns": [{"name": c} for c in cols],
        "wells": [
            {"path": f"{rows[r]}/{cols[c]}", "rowIndex": r, "columnIndex": c} for r, c in cells
        ],
    }
    if draw(st.booleans()):
        p["acquisitions"] = [
            {"id": i, "maximumfieldcount": 1, "name": f"a{i}"}
            for i in range(draw(st.integers(1, 3)))
        ]
        p["field_count"] = draw(st.integers(1, 9))
    if draw(st.booleans()):
        p["name"] = draw(names)
    if version == "0.4":
        p["version"] = "0.4"
    return p


@st.composite
def well(draw: st.DrawFn, version: str) -> dict[str, Any]:
    paths = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    w: dict[str, Any] = {"images": [{"path": p, "acquisition": 0} for p in paths]}
    if version == "0.4":
        w["version"] = "0.4"
    return w


@st.composite
def image_label(draw: st.DrawFn, version: str) -> dict[str, Any]:
    values = draw(st.lists(st.integers(0, 1000), min_size=1, max_size=5, unique=True))
    rgba = st.lists(st.integers(0, 255), min_size=4, max_size=4)
    lab: dict[str, Any] = {
        "colors": [{"label-value": v, "rgba": draw(rgba)} for v in values],
        "properties": [{"label-value": v, "class": draw(names)} for v in values],
        "source": {"image": "../../"},
    }
    if version == "0.4":
        lab["version"] = "0.4"
    return lab


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """(version, attributes) of a random valid document of a random kind."""
    version = draw(st.sampled_from(["0.4", "0.5"]))
    kind = draw(st.sampled_from(["image", "label", "plate", "well", "labels"]))
    body: dict[str, Any] = {}
    if kind in ("image", "label"):
        body["multiscales"] = [draw(multiscale(version))]
        if kind == "image" and draw(st.booleans()):
            body["omero"] = draw(omero())
        if kind == "label":
            body["image-label"] = draw(image_label(version))
    elif kind == "plate":
        body["plate"] = draw(plate(version))
    elif kind == "well":
        body["well"] = draw(well(version))
    else:
        body["labels"] = draw(st.lists(names, min_size=1, max_size=3, unique=True))
    if version == "0.5":
        return version, {"ome": {"version": "0.5", **body}}
    return version, body
