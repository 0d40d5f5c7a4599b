"""The read engine. So far only its pure half: region planning (:mod:`ngio_async.engine.plan`).

Planning maps a region of an array to the stored objects (chunks or shards) it needs, their keys,
and the selections to copy; it does no I/O, so it is tested without a store.
"""

from __future__ import annotations

from ngio_async.engine.plan import (
    BasicSelection,
    ChunkPlan,
    InnerChunkPlan,
    Region,
    ShardPlan,
    normalize_selection,
    plan_chunks,
    plan_shards,
    region_shape,
)

__all__ = [
    "BasicSelection",
    "ChunkPlan",
    "InnerChunkPlan",
    "Region",
    "ShardPlan",
    "normalize_selection",
    "plan_chunks",
    "plan_shards",
    "region_shape",
]
