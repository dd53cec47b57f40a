"""Configuration: YAML file, environment overrides, and no leaks between loads."""

from pathlib import Path

import pytest

from gateway.settings import ConfigError, Settings, load_settings

pytestmark = pytest.mark.unit


def test_yaml_then_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text("server: {port: 6000, workers: 3}\ndatabase: {url: 'sqlite:///x.db'}\n")
    monkeypatch.setenv("HPCGW_SERVER__PORT", "7000")
    settings = load_settings(config)
    assert settings.server.port == 7000  # environment over file
    assert settings.server.workers == 3  # file over default
    assert settings.database.url == "sqlite:///x.db"


def test_a_loaded_file_does_not_leak_into_later_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HPCGW_CONFIG", raising=False)
    config = tmp_path / "gw.yaml"
    config.write_text("server: {port: 6001}\n")
    assert load_settings(config).server.port == 6001
    assert Settings().server.port == 5000


def test_bad_files_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml")


def test_jobs_never_run_as_root() -> None:
    with pytest.raises(ValueError, match="root"):
        Settings(auth={"default_user": {"hpc_login": "root"}})  # type: ignore[arg-type]
