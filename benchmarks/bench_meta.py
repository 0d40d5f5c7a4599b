"""Decode + validate the metadata of a 384-well plate: ngio_async.meta against ome-zarr-models.

The documents: one plate (16 rows x 24 columns, 384 wells), 384 well documents and 384 image
documents (4 channels, 5 levels, czyx, omero). Both contenders parse the same JSON bytes (the
group attributes) into validated models, in one run. Prints a table with the ratio.

    make bench        # or: .venv/bin/python benchmarks/bench_meta.py
"""

from __future__ import annotations

import json
import string
import time
import warnings
from typing import TYPE_CHECKING, Any

from ngio_async.meta import validate

if TYPE_CHECKING:
    from collections.abc import Callable

ROWS = list(string.ascii_uppercase[:16])
COLS = [str(i) for i in range(1, 25)]


def plate_doc(version: str) -> dict[str, Any]:
    plate: dict[str, Any] = {
        "name": "bench plate",
        "field_count": 1,
        "acquisitions": [{"id": 0, "name": "run", "maximumfieldcount": 1, "starttime": 1700000000}],
        "rows": [{"name": r} for r in ROWS],
        "columns": [{"name": c} for c in COLS],
        "wells": [
            {"path": f"{r}/{c}", "rowIndex": i, "columnIndex": j}
            for i, r in enumerate(ROWS)
            for j, c in enumerate(COLS)
        ],
    }
    return wrap(version, "plate", plate)


def well_doc(version: str) -> dict[str, Any]:
    return wrap(version, "well", {"images": [{"path": "0", "acquisition": 0}]})


def image_doc(version: str, k: int) -> dict[str, Any]:
    axes = [
        {"name": "c", "type": "channel"},
        {"name": "z", "type": "space", "unit": "micrometer"},
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]
    datasets = [
        {
            "path": str(i),
            "coordinateTransformations": [
                {"type": "scale", "scale": [1.0, 1.0, 0.325 * 2**i, 0.325 * 2**i]},
                {"type": "translation", "translation": [0.0, 0.0, 0.1 * k, 0.1 * k]},
            ],
        }
        for i in range(5)
    ]
    ms: dict[str, Any] = {"name": f"img{k}", "axes": axes, "datasets": datasets}
    omero = {
        "channels": [
            {
                "label": name,
                "color": color,
                "active": True,
                "window": {"min": 0, "max": 65535, "start": 0, "end": 4000},
            }
            for name, color in zip(
                ["DAPI", "GFP", "RFP", "Cy5"], ["0000FF", "00FF00", "FF0000", "FF00FF"], strict=True
            )
        ]
    }
    out = wrap(version, "multiscales", [ms])
    (out["ome"] if version == "0.5" else out)["omero"] = omero
    return out


def wrap(version: str, key: str, body: Any) -> dict[str, Any]:
    if version == "0.5":
        return {"ome": {"version": "0.5", key: body}}
    if isinstance(body, dict):
        body = {**body, "version": "0.4"}
    else:
        body = [{**b, "version": "0.4"} for b in body]
    return {key: body}


def documents(version: str) -> list[tuple[str, bytes]]:
    docs = [("plate", json.dumps(plate_doc(version)).encode())]
    docs += [("well", json.dumps(well_doc(version)).encode()) for _ in range(384)]
    docs += [("image", json.dumps(image_doc(version, k)).encode()) for k in range(384)]
    return docs


def ome_zarr_models_decoders(version: str) -> dict[str, Callable[[bytes], Any]] | None:
    try:
        if version == "0.5":
            from ome_zarr_models.v05.base import BaseZarrAttrs
            from ome_zarr_models.v05.hcs import HCSAttrs
            from ome_zarr_models.v05.image import ImageAttrs
            from ome_zarr_models.v05.well import WellAttrs

            return {
                "plate": BaseZarrAttrs[HCSAttrs].model_validate_json,
                "well": BaseZarrAttrs[WellAttrs].model_validate_json,
                "image": BaseZarrAttrs[ImageAttrs].model_validate_json,
            }
        from ome_zarr_models.v04.hcs import HCSAttrs as HCSAttrs4
        from ome_zarr_models.v04.image import ImageAttrs as ImageAttrs4
        from ome_zarr_models.v04.well import WellAttrs as WellAttrs4

        return {
            "plate": HCSAttrs4.model_validate_json,
            "well": WellAttrs4.model_validate_json,
            "image": ImageAttrs4.model_validate_json,
        }
    except ImportError:
        return None


def best_of(fn: Callable[[], None], repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    warnings.simplefilter("ignore")
    print(f"{'version':8} {'contender':22} {'769 docs (ms)':>14} {'docs/s':>10} {'ratio':>8}")
    for version in ("0.4", "0.5"):
        docs = documents(version)

        def ours(docs: list[tuple[str, bytes]] = docs, version: str = version) -> None:
            for _, raw in docs:
                validate(raw, version=version)

        ours()
        t_ours = best_of(ours)
        print(
            f"{version:8} {'ngio_async.meta':22} {t_ours * 1e3:14.2f} {len(docs) / t_ours:10.0f} {1.0:8.1f}"
        )
        decoders = ome_zarr_models_decoders(version)
        if decoders is None:
            print(
                f"{version:8} {'ome-zarr-models':22} {'not installed (pip install .[bench])':>34}"
            )
            continue

        def theirs(docs: list[tuple[str, bytes]] = docs, decoders: Any = decoders) -> None:
            for kind, raw in docs:
                decoders[kind](raw)

        theirs()
        t_theirs = best_of(theirs)
        ratio = t_theirs / t_ours
        print(
            f"{version:8} {'ome-zarr-models':22} {t_theirs * 1e3:14.2f} "
            f"{len(docs) / t_theirs:10.0f} {1 / ratio:8.3f}   -> ngio_async is {ratio:.1f}x faster"
        )


if __name__ == "__main__":
    main()
