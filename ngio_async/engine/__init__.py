"""The engine's pure half: region planning (:mod:`.plan`), tile grids (:mod:`.tiles`) and pyramid
kernels and planning (:mod:`.pyramid`).

Planning maps a region of an array to the stored objects (chunks or shards) it needs, their keys,
and the selections to copy; it does no I/O, so it is tested without a store.
"""

from __future__ import annotations

from ngio_async.engine.plan import (
    BasicSelection,
    ChunkPlan,
    InnerChunkPlan,
    ListIndex,
    Region,
    ShardPlan,
    list_index,
    normalize_selection,
    plan_chunks,
    plan_shards,
    region_shape,
    strided_parts,
)
from ngio_async.engine.pyramid import (
    LevelPlan,
    Method,
    PyramidStep,
    check_levels_shrink,
    downsample,
    pyramid_plan,
    pyramid_shapes,
    region_footprint,
)
from ngio_async.engine.tiles import (
    TileSpec,
    chunk_uses,
    default_tile_shape,
    halo,
    keys_ahead,
    same_object_runs,
    tile_grid,
)

__all__ = [
    "BasicSelection",
    "ChunkPlan",
    "InnerChunkPlan",
    "LevelPlan",
    "Method",
    "PyramidStep",
    "Region",
    "ShardPlan",
    "TileSpec",
    "chunk_uses",
    "default_tile_shape",
    "downsample",
    "halo",
    "keys_ahead",
    "ListIndex",
    "list_index",
    "normalize_selection",
    "plan_chunks",
    "plan_shards",
    "pyramid_plan",
    "pyramid_shapes",
    "check_levels_shrink",
    "region_footprint",
    "region_shape",
    "same_object_runs",
    "strided_parts",
    "tile_grid",
]
