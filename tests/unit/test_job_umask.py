"""The job's umask follows the workspace modes (a service-account gateway reads the outputs)."""

from __future__ import annotations

import pytest

from gateway.settings import SiteSettings
from gateway.workflow.batch import job_umask

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("dir_mode", "umask"), [("750", 0o027), ("2770", 0o007), ("0o2775", 0o002), ("700", 0o077)]
)
def test_the_umask_grants_the_group_what_the_workspace_folders_grant(
    dir_mode: str, umask: int
) -> None:
    assert job_umask(SiteSettings(workspace_dir_mode=dir_mode)) == umask  # type: ignore[arg-type]


def test_modes_are_octal_and_bounded() -> None:
    assert SiteSettings(workspace_file_mode="660").workspace_file_mode == 0o660  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="octal digits"):
        SiteSettings(workspace_dir_mode="rwx")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="between 0 and 7777"):
        SiteSettings(workspace_dir_mode=0o17777)
