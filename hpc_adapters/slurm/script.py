"""Batch-script rendering for Slurm.

The script is ``#!/bin/bash`` followed by :attr:`JobSpec.script`, which the
process layer has already rendered from a fixed template: user values never
reach it (they travel as ``inputs.json``). Everything Slurm needs to know
(resources, output paths, account, environment) goes in the job *description*,
not in ``#SBATCH`` lines, so nothing here is interpolated. Transports that can only
pass a script (``sbatch`` over SSH) use :func:`sbatch_options`, whose values
are each ``shlex.quote``-d for the command line.
"""

from __future__ import annotations

import posixpath
import re
import shlex

from hpc_adapters.base import JobSpec

SHEBANG = "#!/bin/bash"
#: What a Slurm account name may look like: no whitespace, commas (Slurm's list
#: separator), quotes or control characters, and no leading ``-`` (an option).
_ACCOUNT = re.compile(r"[A-Za-z0-9_.@+][A-Za-z0-9_.@+-]{0,99}")


def render_batch_script(spec: JobSpec) -> str:
    """Return the batch script for ``spec``: the shebang, then the body verbatim.

    A body that already starts with ``#!`` is kept as it is.
    """
    body = spec.script
    if body.startswith("#!"):
        text = body
    else:
        text = f"{SHEBANG}\n{body}"
    return text if text.endswith("\n") else text + "\n"


def output_paths(spec: JobSpec) -> tuple[str, str]:
    """Absolute stdout/stderr paths under ``spec.workdir``.

    Relative names are taken under the workdir; a path that normalises to
    somewhere outside it raises :class:`ValueError`.
    """
    if not posixpath.isabs(spec.workdir):
        raise ValueError(f"job workdir must be absolute: {spec.workdir!r}")
    workdir = posixpath.normpath(spec.workdir)
    paths = []
    for name in (spec.stdout, spec.stderr):
        path = posixpath.normpath(posixpath.join(workdir, name))
        if posixpath.commonpath([workdir, path]) != workdir or path == workdir:
            raise ValueError(f"job output path {name!r} is not inside {workdir}")
        paths.append(path)
    return paths[0], paths[1]


def job_account(spec: JobSpec) -> str | None:
    """The Slurm account to charge (``--account``), or None (also for ``""``) for the
    user's default account.

    The gateway passes the job's project; a value Slurm could not hold as one
    account name raises :class:`ValueError` (the adapters turn it into a
    rejected job) instead of reaching the scheduler as a list or an option.
    """
    if not spec.account:
        return None
    if not _ACCOUNT.fullmatch(spec.account):
        raise ValueError(f"not a Slurm account name: {spec.account!r}")
    return spec.account


#: The most tasks one job array may have here (Slurm's default ``MaxArraySize`` is 1001).
MAX_ARRAY_SIZE = 1000


def array_range(spec: JobSpec) -> str:
    """Slurm's ``--array`` value for ``spec`` (``0-<n-1>``); ValueError for a size
    outside ``1..MAX_ARRAY_SIZE`` (the adapters turn it into a rejected job)."""
    size = spec.array_size
    if size is None or isinstance(size, bool) or not 1 <= size <= MAX_ARRAY_SIZE:
        raise ValueError(f"job array size must be 1..{MAX_ARRAY_SIZE}, got {size!r}")
    return f"0-{size - 1}"


def sbatch_options(spec: JobSpec) -> list[str]:
    """``sbatch`` command-line options for ``spec``, every value shell-quoted.

    For command-line transports (SSH); slurmrestd takes a JSON description instead.
    """
    stdout, stderr = output_paths(spec)
    opts = {
        "--job-name": spec.name,
        "--chdir": spec.workdir,
        "--output": stdout,
        "--error": stderr,
        "--cpus-per-task": str(spec.cpus),
        "--ntasks": "1",
        "--nodes": "1",
        "--mem": f"{spec.memory_mb}M",
        "--time": str(spec.time_limit_minutes),
    }
    if spec.array_size is not None:
        opts["--array"] = array_range(spec)
    if spec.partition:
        opts["--partition"] = spec.partition
    account = job_account(spec)
    if account:
        opts["--account"] = account
    return [f"{key}={shlex.quote(value)}" for key, value in opts.items()]
