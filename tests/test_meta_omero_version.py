"""Writing a 0.4 document as 0.5 leaves no 0.4 ``omero.version`` behind."""

from __future__ import annotations

import json

from corpus_files import CORPUS

from ngio_async.meta import decode_attrs, to_attrs


def test_04_omero_version_is_dropped_in_05_and_kept_in_04() -> None:
    raw = (CORPUS / "0.4" / "image" / "valid" / "strict-image_omero.json").read_bytes()
    meta = decode_attrs(raw)
    assert json.loads(raw)["omero"]["version"] == "0.4"
    as05 = to_attrs(meta, "0.5")
    assert "version" not in as05["ome"]["omero"]
    assert as05["ome"]["omero"]["channels"]
    assert to_attrs(meta, "0.4")["omero"]["version"] == "0.4"
