"""Property tests: random valid documents round-trip; random mutations raise only MetadataError."""

from __future__ import annotations

import copy
import warnings
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st
from ngff_docs import documents

from ngio_async import MetadataError, UnsupportedError
from ngio_async.meta import MetadataWarning, OmeMetadata, encode_attrs, to_attrs, validate

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(documents())
def test_round_trip(case: tuple[str, dict[str, Any]]) -> None:
    version, doc = case
    meta = validate(doc)
    assert meta.version == version
    assert to_attrs(meta) == doc
    # bytes in, bytes out, and across versions and back
    assert to_attrs(validate(encode_attrs(meta))) == doc
    other = "0.5" if version == "0.4" else "0.4"
    back = to_attrs(validate(to_attrs(meta, other)), version)
    if version == "0.4" and "omero" in doc and "version" not in doc["omero"]:
        assert back["omero"].pop("version") == "0.4"  # moved back like the other versions
    assert back == doc


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*path, i))
    return out


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    _, drawn = draw(documents())
    doc: Any = copy.deepcopy(drawn)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        if not path:
            doc = draw(json_values) if draw(st.booleans()) else doc
            continue
        parent = doc
        for p in path[:-1]:
            parent = parent[p]
        action = draw(st.sampled_from(["delete", "replace", "duplicate"]))
        key = path[-1]
        if action == "delete":
            del parent[key]
        elif action == "replace":
            parent[key] = draw(json_values)
        elif isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
        else:
            parent[key + "_copy"] = copy.deepcopy(parent[key])
    return doc


@SETTINGS
@given(mutated())
def test_mutations_raise_only_metadata_error(doc: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        try:
            meta = validate(doc)
        except (MetadataError, UnsupportedError) as exc:
            if isinstance(exc, UnsupportedError):  # only for a version string naming 0.6+
                assert "0.6" in str(exc) or "0.7" in str(exc)
            else:
                assert exc.path.startswith("$")
                assert " - at `$" in str(exc)
            return
    assert isinstance(meta, OmeMetadata)
    assert meta.kinds  # accepted documents carry NGFF metadata
