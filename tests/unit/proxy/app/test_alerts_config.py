"""`[alerts]` and the admin token in the config file and environment: secrets only from the environment,
Standard Webhooks secrets checked at start-up, spend parameters exact.

Method: `load_settings` on the shipped example extended with alert endpoints, and on broken variants.
"""

from __future__ import annotations

import base64
from decimal import Decimal
from pathlib import Path

import pytest

from proxy.app.config import ConfigError, example_config_text, load_settings

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
ENVIRON = {
    "MEGAROUTER_SETTLEMENT_PRIVATE_KEY": "0x" + "11" * 32,
    "OPENAI_API_KEY": "sk-test",
    "OPS_HOOK_SECRET": SECRET,
    "MEGAROUTER_ADMIN_TOKEN": "admin-secret-0123456789",
}
ENDPOINT = """
[[alerts.endpoints]]
name = "ops"
url = "https://ops.example.com/hook"
secret_env = "OPS_HOOK_SECRET"
"""


def _load(tmp_path: Path, text: str, environ: dict[str, str] = ENVIRON) -> object:
    path = tmp_path / "megarouter.toml"
    path.write_text(text)
    return load_settings(path, environ)


def _with_endpoint(text: str, endpoint: str = ENDPOINT) -> str:
    # The endpoint table must follow [alerts] and precede the next table.
    return text.replace("[alerts.spend_anomaly]", endpoint.strip() + "\n\n[alerts.spend_anomaly]")


def test_endpoints_take_their_secret_from_the_environment_and_the_admin_token_too(tmp_path: Path) -> None:
    path = tmp_path / "megarouter.toml"
    path.write_text(_with_endpoint(example_config_text()))
    settings = load_settings(path, ENVIRON)
    (endpoint,) = settings.alerts.endpoints
    assert (endpoint.endpoint_name, endpoint.url) == ("ops", "https://ops.example.com/hook")
    assert endpoint.secret.get_secret_value() == SECRET
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == "admin-secret-0123456789"
    assert settings.alerts.spend_anomaly.mad_multiplier == Decimal(6)
    assert settings.alerts.spend_anomaly.min_excess_nano_usd == 1_000_000_000


def test_a_fractional_multiplier_is_read_exactly(tmp_path: Path) -> None:
    text = example_config_text().replace("mad_multiplier = 6", "mad_multiplier = 4.1")
    path = tmp_path / "megarouter.toml"
    path.write_text(text)
    assert load_settings(path, ENVIRON).alerts.spend_anomaly.mad_multiplier == Decimal("4.1")


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        (_with_endpoint(example_config_text(), ENDPOINT + 'secret = "whsec_x"\n'), ENVIRON, "secret_env"),
        (_with_endpoint(example_config_text()), {**ENVIRON, "OPS_HOOK_SECRET": ""}, "secret_env"),
        (_with_endpoint(example_config_text()), {**ENVIRON, "OPS_HOOK_SECRET": "whsec_!!!"}, "base64"),
        (
            _with_endpoint(example_config_text()),
            {**ENVIRON, "OPS_HOOK_SECRET": "whsec_c2hvcnQ="},
            "24 random",
        ),
        (_with_endpoint(example_config_text(), ENDPOINT.replace("https://", "ftp://")), ENVIRON, "url"),
        (_with_endpoint(example_config_text(), ENDPOINT + ENDPOINT), ENVIRON, "listed once"),
        ('admin_token = "in-file"\n' + example_config_text(), ENVIRON, "MEGAROUTER_ADMIN_TOKEN"),
        (
            example_config_text().replace("retry_base_s = 5.0", "retry_base_s = 7200.0"),
            ENVIRON,
            "retry_max_s",
        ),
        (
            example_config_text().replace("baseline_hours = 24", "baseline_hours = 1"),
            ENVIRON,
            "baseline_hours",
        ),
    ],
)
def test_a_broken_alerts_config_names_what_is_wrong(
    tmp_path: Path, text: str, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, text, environ)
