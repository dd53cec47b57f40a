"""Runner of the ``echo`` process: ``python -m processes.echo.run`` in the job workspace.

Each ``<kind>_input`` given in ``inputs.json`` becomes ``<kind>_output`` in the
manifest, unchanged. ``pause`` sleeps (reporting progress) before finishing;
a non-zero ``exit_code`` makes the run fail: a message goes to stderr and the
process exits with that code without writing a manifest.

Exit codes: 0 success, 2 invalid inputs (message on stderr), otherwise the
requested ``exit_code``. Runs on the cluster: standard library only.
"""

from __future__ import annotations

import base64
import math
import sys
import time
from pathlib import Path
from typing import Any

from processes.runtime import read_inputs, report_progress, write_outputs

#: input name -> output name, in description order.
ECHOED = {
    "string_input": "string_output",
    "number_input": "number_output",
    "integer_input": "integer_output",
    "boolean_input": "boolean_output",
    "object_input": "object_output",
    "bounding_box_input": "bounding_box_output",
    "xml_input": "xml_output",
    "array_input": "array_output",
    "binary_input": "binary_output",
    "mixed_input": "mixed_output",
    "enum_input": "enum_output",
}
#: Inputs whose value is never a JSON object: a qualified value
#: ({"value": ..., "mediaType": ...}) or a staged reference is unwrapped.
_SCALAR_INPUTS = {
    "string_input",
    "number_input",
    "integer_input",
    "boolean_input",
    "xml_input",
    "binary_input",
    "mixed_input",
    "enum_input",
}
#: Inputs whose content is bytes: staged by reference, they are echoed base64-encoded.
_BINARY_INPUTS = {"binary_input"}
MAX_PAUSE_SECONDS = 240
EXIT_INVALID_INPUT = 2


class InvalidInput(ValueError):
    """An input value the runner cannot use; reported on stderr, exit code 2."""


def _staged_text(ref: dict[str, Any], workspace: Path, *, binary: bool = False) -> str:
    """Content of an input staged by the gateway ({"href": ..., "path": "inputs/x"}).

    Text as it is; with ``binary`` the file's bytes, base64-encoded (the JSON form
    of a ``contentEncoding: base64`` value).
    """
    root = workspace.resolve()
    path = (root / str(ref["path"])).resolve()
    if not path.is_relative_to(root):
        raise InvalidInput(f"staged input path {ref['path']!r} is outside the workspace")
    try:
        if binary:
            return base64.b64encode(path.read_bytes()).decode("ascii")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read staged input {ref['path']!r}: {exc}") from exc


def _plain(name: str, value: Any, workspace: Path) -> Any:
    """The bare value of one input (unwrapping qualified values and references)."""
    if isinstance(value, dict):
        if name in _SCALAR_INPUTS and "path" in value:
            return _staged_text(value, workspace, binary=name in _BINARY_INPUTS)
        if name != "object_input" and "value" in value and "bbox" not in value:
            return value["value"]
    return value


def _number(inputs: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = inputs.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{name} must be a number, got {value!r}")
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low:g} and {high:g}, got {value!r}")
    return value


def _pause(seconds: float, workspace: Path) -> None:
    """Sleep ``seconds`` in up to 20 steps, reporting progress 5..95 %."""
    steps = max(1, min(20, math.ceil(seconds)))
    for step in range(steps):
        report_progress(5 + 90 * step // steps, f"pausing ({seconds:g} s)", workspace)
        time.sleep(seconds / steps)


def run(workspace: Path | None = None) -> int:
    root = workspace or Path.cwd()
    report_progress(0, "started", root)
    inputs = read_inputs(root)
    try:
        pause = _number(inputs, "pause", 0, 0, MAX_PAUSE_SECONDS)
        exit_code = _number(inputs, "exit_code", 0, 0, 255)
        if exit_code != int(exit_code):
            raise InvalidInput(f"exit_code must be an integer, got {exit_code!r}")
        outputs = {
            ECHOED[name]: {"value": _plain(name, value, root)}
            for name, value in inputs.items()
            if name in ECHOED
        }
    except InvalidInput as exc:
        print(f"echo: invalid input: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    if pause > 0:
        _pause(pause, root)
    if exit_code:
        detail = outputs.get("string_output", {}).get("value")
        message = f"echo: failing as requested (exit_code={int(exit_code)})"
        print(f"{message}: {detail}" if detail is not None else message, file=sys.stderr)
        return int(exit_code)
    write_outputs(outputs, root)
    report_progress(100, f"echoed {len(outputs)} output(s)", root)
    return 0


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
