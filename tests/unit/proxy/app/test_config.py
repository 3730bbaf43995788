"""The config file and environment make valid Settings or fail with a message naming the field.

Method: `load_settings` and the `megarouter config` CLI on the shipped example and on broken variants.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.app.config import ConfigError, example_config_text, load_settings
from proxy.cli import main

SETTLEMENT_KEY = "0x" + "11" * 32
ENVIRON = {"MEGAROUTER_SETTLEMENT_PRIVATE_KEY": SETTLEMENT_KEY, "OPENAI_API_KEY": "sk-test"}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "megarouter.toml"
    path.write_text(text)
    return path


def test_the_shipped_example_is_valid(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, example_config_text()), ENVIRON)
    assert settings.network == "eip155:8453"
    assert settings.assets[0].eip712_name == "USD Coin"
    openai = settings.providers["openai"]
    assert openai.api_key is not None
    assert openai.api_key.get_secret_value() == "sk-test"
    assert settings.providers["anthropic"].api_key is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda text: text.replace("chain_id = 8453", "chain_id = -1"), "chain_id"),
        (
            lambda text: text.replace('default_strategy = "balanced"', 'default_strategy = "fastest"'),
            "default_strategy",
        ),
        (lambda text: text.replace("hold_timeout_s = 900", "hold_timeout_s = 60"), "hold_timeout_s"),
        (
            lambda text: text.replace(
                'address = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"', 'address = "0x12"'
            ),
            "assets.0.address",
        ),
        (lambda text: text + '\nsettlement_private_key = "0xabc"\n', "settlement_private_key"),
        (lambda text: text.replace('api_key_env = "OPENAI_API_KEY"', 'api_key = "sk-in-file"'), "api_key"),
        (lambda text: text + "\nunknown_setting = 1\n", "unknown_setting"),
        (lambda text: text + "\n[oops\n", "not valid TOML"),
    ],
)
def test_a_broken_config_names_what_is_wrong(tmp_path: Path, change: object, message: str) -> None:
    assert callable(change)
    with pytest.raises(ConfigError, match=message):
        load_settings(_write(tmp_path, change(example_config_text())), ENVIRON)


def test_the_settlement_key_must_come_from_the_environment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MEGAROUTER_SETTLEMENT_PRIVATE_KEY"):
        load_settings(_write(tmp_path, example_config_text()), {})


def test_config_check_cli_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _write(tmp_path, example_config_text())
    monkeypatch.setenv("MEGAROUTER_SETTLEMENT_PRIVATE_KEY", SETTLEMENT_KEY)
    assert main(["config", "check", "--config", str(good)]) == 0
    assert "config ok" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(example_config_text().replace("port = 8402", "port = 99999"))
    assert main(["config", "check", "--config", str(bad)]) == 1
    assert "port" in capsys.readouterr().err


def test_the_metrics_token_comes_from_the_environment_only(tmp_path: Path) -> None:
    path = _write(tmp_path, example_config_text())
    environ = {**ENVIRON, "MEGAROUTER_METRICS_BEARER_TOKEN": "t0ken"}
    token = load_settings(path, environ).metrics_bearer_token
    assert token is not None
    assert token.get_secret_value() == "t0ken"
    assert load_settings(path, ENVIRON).metrics_bearer_token is None
    in_file = _write(tmp_path, 'metrics_bearer_token = "t0ken"\n' + example_config_text())
    with pytest.raises(ConfigError, match="MEGAROUTER_METRICS_BEARER_TOKEN"):
        load_settings(in_file, ENVIRON)
