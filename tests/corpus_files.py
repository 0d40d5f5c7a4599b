"""Locate the shared NGFF conformance corpus (``../shared/ngff-corpus`` beside the project)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("NGFF_CORPUS", ROOT.parent / "shared" / "ngff-corpus"))


def manifest() -> list[dict[str, str]]:
    """Rows of MANIFEST.tsv (path, version, kind, expected, profile, ...)."""
    if not (CORPUS / "MANIFEST.tsv").is_file():
        raise FileNotFoundError(
            f"NGFF corpus not found at {CORPUS}; set NGFF_CORPUS to ngff-corpus/ of shared/"
        )
    with open(CORPUS / "MANIFEST.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def load(row: dict[str, str]) -> Any:
    return json.loads((CORPUS / row["path"]).read_text())
