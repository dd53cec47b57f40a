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
:func:`run_tiled` is the whole task; a runner passes its tile and merge steps.
This module runs on the cluster: standard library only.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processes.runtime import read_inputs, report_progress

TILES_DIR = "tiles"
MERGE_CLAIM = "merge.claim"
EXIT_INVALID_INPUT = 2


class InvalidInput(ValueError):
    """An input the process cannot use: one line on stderr, exit code 2."""


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


#: Computes this task's tile from the job's inputs (raises InvalidInput).
TileStep = Callable[[dict[str, Any], ArrayTask, Path], None]
#: Merges every tile into the outputs and writes ``outputs.json``.
MergeStep = Callable[[dict[str, Any], ArrayTask, Path], None]


def run_tiled(process_id: str, tile: TileStep, merge: MergeStep, root: Path) -> int:
    """One array task of a tiled process: its tile, its mark, and the merge if last.

    Progress is tiles done / tiles total (to 90 %); the merge reports the rest.
    Returns the exit code (2 for an invalid input, printed as one line)."""
    task = ArrayTask.from_environment()
    try:
        inputs = read_inputs(root)
        tile(inputs, task, root)
        done = mark_done(root, task)
        report_progress(90 * done // task.count, f"{done}/{task.count} tiles done", root)
        if claim_merge(root, task, done):
            report_progress(92, "merging tiles", root)
            merge(inputs, task, root)
            report_progress(100, f"merged {task.count} tile(s)", root)
    except InvalidInput as exc:
        print(f"{process_id} (tile {task.index}): invalid input: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    return 0
