"""cwltool's own validation of a package, in the gateway process, fetching nothing.

The package is written to a private temporary folder as ``package.cwl`` and
loaded with cwltool's loader (schema-salad validation, type checks of workflow
connections, ...) exactly as the job will load it. The loader's fetcher may
read that one file and nothing else -- no other local file, no URL -- so a
document that names another resource fails validation instead of reaching it.
Messages keep cwltool's line and column numbers, with the temporary folder
removed from them.
"""

from __future__ import annotations

import tempfile
import threading
import urllib.parse
from pathlib import Path
from typing import Any

from gateway.errors import BadRequest

_lock = threading.Lock()  # cwltool's loader keeps process-wide caches


def _only(allowed: str) -> Any:
    """A schema-salad fetcher class that reads ``allowed`` and nothing else."""
    from schema_salad.exceptions import ValidationException
    from schema_salad.fetcher import DefaultFetcher

    class OnlyThePackage(DefaultFetcher):
        def fetch_text(self, url: str, content_types: list[str] | None = None) -> str:
            if urllib.parse.urldefrag(url)[0] != allowed:
                raise ValidationException(f"{url} is not read: packages must be self-contained")
            return str(super().fetch_text(url, content_types))

        def check_exists(self, url: str) -> bool:
            return urllib.parse.urldefrag(url)[0] == allowed

    return OnlyThePackage


def cwltool_validate(text: str, entry: str = "") -> None:
    """BadRequest with cwltool's message when ``text`` is not a valid CWL process."""
    from cwltool.context import LoadingContext
    from cwltool.errors import WorkflowException
    from cwltool.load_tool import fetch_document, make_tool, resolve_and_validate_document
    from cwltool.workflow import default_make_tool
    from schema_salad.exceptions import SchemaSaladException

    with tempfile.TemporaryDirectory(prefix="hpcgw-cwl-") as folder, _lock:
        path = Path(folder) / "package.cwl"
        path.write_text(text, encoding="utf-8")
        context = LoadingContext(
            {
                "skip_schemas": True,
                "do_update": True,
                "construct_tool_object": default_make_tool,
                "fetcher_constructor": _only(path.as_uri()),
            }
        )
        try:
            context, document, uri = fetch_document(f"{path.as_uri()}{entry}", context)
            context, uri = resolve_and_validate_document(context, document, uri)
            make_tool(uri, context)
        except (SchemaSaladException, WorkflowException, ValueError, KeyError, TypeError) as exc:
            message = str(exc).replace(f"{folder}/", "").replace(f"{Path(folder).name}/", "")
            raise BadRequest(f"the CWL document is not valid: {message}") from None
