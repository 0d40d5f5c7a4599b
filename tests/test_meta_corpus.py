"""The official NGFF corpus through ``ngio_async.meta.validate``, in place, via its manifest."""

from __future__ import annotations

import gc
import importlib.util
import sys
import warnings
from typing import Any

import pytest
from corpus_files import CORPUS, load, manifest

from ngio_async import MetadataError, UnsupportedError
from ngio_async.meta import MetadataWarning, validate, validate_transformations

ROWS = manifest()
VERSIONS = ("0.4", "0.5", "0.6rc0")
SUPPORTED = [r for r in ROWS if r["version"] in VERSIONS]


def _check(doc: Any, version: str, kind: str, strict: bool = False) -> None:
    """The corpus runner's callable: raise when invalid (a 0.6 ``transform_fragment``, the
    spec's coordinate systems and transformations outside a group, by
    ``validate_transformations``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        if kind == "transform_fragment":
            validate_transformations(doc)
        else:
            validate(doc, version=version, kind=kind, strict=strict)


@pytest.mark.parametrize("row", SUPPORTED, ids=[r["path"] for r in SUPPORTED])
@pytest.mark.parametrize("strict", [False, True], ids=["spec", "strict"])
def test_case(row: dict[str, str], strict: bool) -> None:
    if row["profile"] == "strict" and row["expected"] == "invalid" and not strict:
        # strict-invalid cases miss only SHOULD fields: valid under MUST-level rules (two
        # 0.6rc0 ones are of version "0.6rc02": read as the 0.6 they are, not as "0.6rc0")
        doc = load(row)
        found = doc.get("ome", {}).get("version") if row["version"] != "0.4" else None
        _check(doc, found if isinstance(found, str) else row["version"], row["kind"])
        return
    use_strict = strict and row["profile"] == "strict"
    if row["expected"] == "valid":
        _check(load(row), row["version"], row["kind"], strict=use_strict)
    else:
        with pytest.raises(MetadataError) as info:
            _check(load(row), row["version"], row["kind"], strict=use_strict)
        assert "- at `$" in str(info.value)
        assert info.value.path.startswith("$")


def test_schema_misses_column_before_row() -> None:
    """The JSON schema accepts this document; the cross-field rule rejects it."""
    row = next(
        r
        for r in ROWS
        if r["path"].endswith("0.5/plate/invalid/well_path_has_column_before_row.json")
    )
    doc = load(row)
    with pytest.raises(MetadataError, match="does not match rowIndex/columnIndex") as info:
        validate(doc)
    assert info.value.path == "$.ome.plate.wells[0].path"


V06 = [r for r in ROWS if r["version"] == "0.6rc0" and r["kind"] != "transform_fragment"]


@pytest.mark.parametrize("row", V06[::12], ids=[r["path"] for r in V06[::12]])
def test_06_detected(row: dict[str, str]) -> None:
    """0.6rc0 documents are validated as 0.6 without a version asked for (from ome.version):
    the same verdict as with version="0.6rc0"."""
    doc = load(row)
    asked: BaseException | None = None
    try:
        _check(doc, "0.6rc0", row["kind"])
    except MetadataError as exc:
        asked = exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        if asked is None:
            validate(doc, kind=row["kind"])
        else:
            with pytest.raises(MetadataError):
                validate(doc, kind=row["kind"])


@pytest.mark.parametrize("version", ["0.7", "0.7.0", "0.7rc1"])
def test_future_versions_refused(version: str) -> None:
    """A version after 0.6 is refused, naming it; never read as 0.6."""
    row = next(r for r in ROWS if r["path"].endswith("0.6rc0/image/valid/scale.json"))
    doc = load(row)
    doc["ome"]["version"] = version
    with pytest.raises(UnsupportedError, match=version.replace(".", r"\.")):
        validate(doc)


@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_tally(capsys: pytest.CaptureFixture[str]) -> None:
    """The corpus runner over 0.4, 0.5 and 0.6rc0, both profiles: no failure; the tally is
    printed."""
    spec = importlib.util.spec_from_file_location("check_corpus", CORPUS / "check_corpus.py")
    assert spec is not None and spec.loader is not None
    runner: Any = importlib.util.module_from_spec(spec)  # its functions are patched below
    sys.modules.setdefault("check_corpus", runner)
    spec.loader.exec_module(runner)
    lines = []
    for profile in ("spec", "strict"):
        argv = [
            f"{__name__}:_check",
            *[a for v in VERSIONS for a in ("--version", v)],
            "--profile",
            profile,
            "-q",
        ]
        original = runner.load_callable
        runner.load_callable = lambda _spec: _check
        try:
            status = runner.main(argv)
        finally:
            runner.load_callable = original
        out = capsys.readouterr().out.strip().splitlines()[-1]
        lines.append(f"NGFF corpus 0.4+0.5+0.6rc0 [{profile}]: {out}")
        assert status == 0, out
        assert " 0 failed" in out
    gc.collect()  # the runner leaves its manifest file to the garbage collector
    with capsys.disabled():
        print("\n" + "\n".join(lines))
