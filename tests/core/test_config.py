"""Settings precedence: argument > environment > steward.toml > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from steward.config import load_settings
from steward.errors import InvalidInput


def test_defaults_live_in_the_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("STEWARD_HOME", "STEWARD_DB", "STEWARD_ARTIFACTS", "STEWARD_URI"):
        monkeypatch.delenv(var, raising=False)
    settings = load_settings(home=tmp_path / "h")
    assert settings.db_url == f"sqlite:///{tmp_path / 'h' / 'steward.db'}"
    assert settings.artifacts_url == (tmp_path / "h" / "artifacts").as_uri()
    assert settings.uri is None


def test_argument_beats_environment_beats_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "steward.toml").write_text(
        'region = "uae"\nartifacts = "s3://from-toml/x"\ndb = "sqlite:///toml.db"\n'
    )
    monkeypatch.delenv("STEWARD_ARTIFACTS", raising=False)
    monkeypatch.setenv("STEWARD_DB", "sqlite:///env.db")
    settings = load_settings()
    assert settings.region == "uae"
    assert settings.artifacts_url == "s3://from-toml/x"
    assert settings.db_url == "sqlite:///env.db"
    assert load_settings(db="sqlite:///arg.db").db_url == "sqlite:///arg.db"


def test_a_bad_setting_names_itself(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STEWARD_URI", "ftp://example")
    with pytest.raises(InvalidInput) as info:
        load_settings()
    assert info.value.details["field"] == "uri"
    monkeypatch.delenv("STEWARD_URI")
    monkeypatch.setenv("STEWARD_METRIC_FLUSH_POINTS", "0")
    with pytest.raises(InvalidInput, match="metric_flush_points"):
        load_settings()
