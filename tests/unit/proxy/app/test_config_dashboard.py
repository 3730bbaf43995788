"""The dashboard's settings: the `[dashboard]` table of the file, its cookie key only from the environment.

Method: `load_settings` on the shipped example, with and without MEGAROUTER_DASHBOARD_SESSION_SECRET, and
with the secret wrongly written into the file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.app.config import ConfigError, example_config_text, load_settings

ENVIRON = {"MEGAROUTER_SETTLEMENT_PRIVATE_KEY": "0x" + "11" * 32}
SECRET = "s" * 40


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "megarouter.toml"
    path.write_text(text)
    return path


def test_the_example_enables_the_dashboard_with_a_per_process_key(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, example_config_text()), ENVIRON)
    assert settings.dashboard.enabled is True
    assert settings.dashboard.session_secret is None
    assert settings.dashboard.login_token_ttl_s == 600


def test_the_cookie_key_comes_from_the_environment_and_keeps_the_file_table(tmp_path: Path) -> None:
    text = example_config_text().replace("session_ttl_s = 43200", "session_ttl_s = 3600")
    settings = load_settings(
        _write(tmp_path, text), ENVIRON | {"MEGAROUTER_DASHBOARD_SESSION_SECRET": SECRET}
    )
    assert settings.dashboard.session_secret is not None
    assert settings.dashboard.session_secret.get_secret_value() == SECRET
    assert settings.dashboard.session_ttl_s == 3600


def test_a_cookie_key_in_the_file_or_too_short_is_refused(tmp_path: Path) -> None:
    in_file = example_config_text().replace("[dashboard]\n", f'[dashboard]\nsession_secret = "{SECRET}"\n')
    with pytest.raises(ConfigError, match="MEGAROUTER_DASHBOARD_SESSION_SECRET"):
        load_settings(_write(tmp_path, in_file), ENVIRON)
    with pytest.raises(ConfigError, match=r"dashboard\.session_secret"):
        load_settings(
            _write(tmp_path, example_config_text()),
            ENVIRON | {"MEGAROUTER_DASHBOARD_SESSION_SECRET": "short"},
        )
