"""Tiled runners: one OGC job as one Slurm job array, the last task merges.

A process with ``hpc.tiling`` in its ``process.yaml`` is submitted as ONE
Slurm job array (one name ``hpcgw-<job id>``, one id, one ``scancel``). Every
task runs the same runner; Slurm tells it which tile is its own
(``SLURM_ARRAY_TASK_ID``) and how many there are (``SLURM_ARRAY_TASK_COUNT``).
Each task:

1. computes its tile (a band of output rows, reading the input rows it
   needs plus the halo the algorithm needs) and writes ``tiles/<k>.tif``;
2. marks the tile done (``tiles/<k>.done``) and reports progress
   (tiles done / tiles total);
3. counts the done marks: the task that sees all of them claims the merge with
   an exclusive create of ``tiles/merge.claim`` and mosaics the tiles into the
   final outputs. Whatever the interleaving, the last task to mark its tile
   sees every mark, and the exclusive create lets exactly one task merge.

A tile that fails leaves no mark, so no merge happens and the array ends
FAILED with that task's exit code (its message is in ``slurm.err``).
This module runs on the cluster: standard library only.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

TILES_DIR = "tiles"
MERGE_CLAIM = "merge.claim"


@dataclass(frozen=True)
class ArrayTask:
    """Which tile this process is, of how many."""

    index: int
    count: int

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> ArrayTask:
        """From Slurm's array variables; a run outside an array is tile 0 of 1."""
        env = os.environ if environ is None else environ
        index = int(env.get("SLURM_ARRAY_TASK_ID", "0"))
        count = int(env.get("SLURM_ARRAY_TASK_COUNT", "1"))
        if not 0 <= index < count:
            raise ValueError(f"array task {index} is not in 0..{count - 1}")
        return cls(index, count)


def strip_rows(total_rows: int, task: ArrayTask) -> tuple[int, int]:
    """The output rows ``[start, stop)`` of ``task``: equal bands, the last one shorter.

    More tasks than rows leave the last tasks an empty band (``start == stop``)."""
    per_task = max(1, math.ceil(total_rows / task.count))
    start = min(total_rows, task.index * per_task)
    return start, min(total_rows, start + per_task)


def tiles_dir(workspace: Path) -> Path:
    path = workspace / TILES_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def tile_path(workspace: Path, index: int) -> Path:
    return tiles_dir(workspace) / f"{index}.tif"


def mark_done(workspace: Path, task: ArrayTask) -> int:
    """Mark this task's tile done; return how many tiles are done now."""
    folder = tiles_dir(workspace)
    (folder / f"{task.index}.done").touch()
    return sum(1 for i in range(task.count) if (folder / f"{i}.done").exists())


def claim_merge(workspace: Path, task: ArrayTask, done: int) -> bool:
    """True for exactly one task once every tile is done: the one to merge."""
    if done < task.count:
        return False
    try:
        fd = os.open(tiles_dir(workspace) / MERGE_CLAIM, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(str(task.index))
    return True


def done_tiles(workspace: Path, task: ArrayTask) -> list[Path]:
    """The tiles to merge, in order (empty bands write no file)."""
    return [p for i in range(task.count) if (p := tile_path(workspace, i)).exists()]
