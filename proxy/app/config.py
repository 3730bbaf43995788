"""Loads Settings from one TOML file plus environment variables for secrets, with clear errors.

The file's top-level keys are the fields of `proxy.settings.Settings`; `[[assets]]` lists the accepted
tokens and `[providers.<name>]` the upstream APIs. Secrets never live in the file:
- MEGAROUTER_SETTLEMENT_PRIVATE_KEY: the settlement wallet's key (required);
- each provider's key from the variable its `api_key_env` names (default `<NAME>_API_KEY`).
- MEGAROUTER_METRICS_BEARER_TOKEN, when set: the bearer token GET /metrics requires.
- each `[[alerts.endpoints]]` webhook's signing secret from the variable its `secret_env` names.
- MEGAROUTER_DASHBOARD_SESSION_SECRET, when set: the key that signs dashboard session cookies.
MEGAROUTER_DATABASE_URL, when set, overrides `database_url`.
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from proxy.settings import Settings

__all__ = ["ConfigError", "example_config_text", "load_settings", "run_config_check"]

CONFIG_ENV = "MEGAROUTER_CONFIG"


class ConfigError(Exception):
    """The configuration cannot be used; the message says where and why."""


def _config_path(path: Path | None, environ: Mapping[str, str]) -> Path:
    chosen = path or (Path(environ[CONFIG_ENV]) if environ.get(CONFIG_ENV) else None)
    if chosen is None:
        raise ConfigError(f"no config file: pass --config or set {CONFIG_ENV}")
    return chosen


def _providers_with_secrets(raw: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    providers: dict[str, Any] = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"providers.{name}: expected a table")
        entry = dict(entry)
        if "api_key" in entry:
            raise ConfigError(f"providers.{name}.api_key: keep secrets out of the file; use api_key_env")
        variable = entry.pop("api_key_env", f"{name.upper().replace('-', '_')}_API_KEY")
        if environ.get(variable):
            entry["api_key"] = environ[variable]
        providers[name] = entry
    return providers


def _alert_endpoints_with_secrets(raw: Any, environ: Mapping[str, str]) -> list[Any]:
    if not isinstance(raw, list):
        raise ConfigError("alerts.endpoints: expected an array of tables ([[alerts.endpoints]])")
    endpoints: list[Any] = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise ConfigError(f"alerts.endpoints[{index}]: expected a table")
        entry = dict(entry)
        if "secret" in entry:
            raise ConfigError(
                f"alerts.endpoints[{index}].secret: keep secrets out of the file; use secret_env"
            )
        variable = entry.pop("secret_env", None)
        if not isinstance(variable, str) or not environ.get(variable):
            raise ConfigError(
                f"alerts.endpoints[{index}].secret_env must name a set environment variable holding the "
                "Standard Webhooks secret (whsec_...)"
            )
        entry["secret"] = environ[variable]
        endpoints.append(entry)
    return endpoints


def load_settings(path: Path | None, environ: Mapping[str, str]) -> Settings:
    config_path = _config_path(path, environ)
    try:
        raw: dict[str, Any] = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ConfigError(f"{config_path}: no such file") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{config_path}: not valid TOML: {error}") from error
    if "settlement_private_key" in raw:
        raise ConfigError(
            "settlement_private_key: keep it out of the file; set MEGAROUTER_SETTLEMENT_PRIVATE_KEY"
        )
    key = environ.get("MEGAROUTER_SETTLEMENT_PRIVATE_KEY")
    if not key:
        raise ConfigError("MEGAROUTER_SETTLEMENT_PRIVATE_KEY is not set")
    raw["settlement_private_key"] = key
    raw["providers"] = _providers_with_secrets(raw.get("providers", {}), environ)
    if "metrics_bearer_token" in raw:
        raise ConfigError(
            "metrics_bearer_token: keep it out of the file; set MEGAROUTER_METRICS_BEARER_TOKEN"
        )
    if environ.get("MEGAROUTER_METRICS_BEARER_TOKEN"):
        raw["metrics_bearer_token"] = environ["MEGAROUTER_METRICS_BEARER_TOKEN"]
    if "admin_token" in raw:
        raise ConfigError("admin_token: keep it out of the file; set MEGAROUTER_ADMIN_TOKEN")
    if environ.get("MEGAROUTER_ADMIN_TOKEN"):
        raw["admin_token"] = environ["MEGAROUTER_ADMIN_TOKEN"]
    _dashboard_secret_from_environment(raw, environ)
    alerts = raw.get("alerts")
    if isinstance(alerts, dict) and "endpoints" in alerts:
        raw["alerts"] = {**alerts, "endpoints": _alert_endpoints_with_secrets(alerts["endpoints"], environ)}
    orgs = raw.setdefault("orgs", {})
    if isinstance(orgs, dict) and "stripe_webhook_secret" in orgs:
        raise ConfigError(
            "orgs.stripe_webhook_secret: keep it out of the file; set MEGAROUTER_STRIPE_WEBHOOK_SECRET"
        )
    if isinstance(orgs, dict) and environ.get("MEGAROUTER_STRIPE_WEBHOOK_SECRET"):
        orgs["stripe_webhook_secret"] = environ["MEGAROUTER_STRIPE_WEBHOOK_SECRET"]
    if environ.get("MEGAROUTER_DATABASE_URL"):
        raw["database_url"] = environ["MEGAROUTER_DATABASE_URL"]
    try:
        return Settings.model_validate(raw)
    except ValidationError as error:
        lines = [
            f"  {'.'.join(str(part) for part in issue['loc']) or '(root)'}: {issue['msg']}"
            for issue in error.errors()
        ]
        raise ConfigError(f"{config_path}: invalid configuration:\n" + "\n".join(lines)) from error


def _dashboard_secret_from_environment(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    """The key that signs dashboard cookies comes only from the environment, never the file."""
    dashboard = raw.get("dashboard")
    if isinstance(dashboard, dict) and "session_secret" in dashboard:
        raise ConfigError(
            "dashboard.session_secret: keep it out of the file; set MEGAROUTER_DASHBOARD_SESSION_SECRET"
        )
    if environ.get("MEGAROUTER_DASHBOARD_SESSION_SECRET"):
        raw["dashboard"] = {
            **(dashboard if isinstance(dashboard, dict) else {}),
            "session_secret": environ["MEGAROUTER_DASHBOARD_SESSION_SECRET"],
        }


def example_config_text() -> str:
    """The documented example config shipped with the package (`megarouter config example`)."""
    return resources.files("proxy").joinpath("config_example.toml").read_text(encoding="utf-8")


def run_config_check(path: Path | None, environ: Mapping[str, str] = os.environ) -> int:
    try:
        settings = load_settings(path, environ)
    except ConfigError as error:
        print(f"config: {error}", file=sys.stderr)
        return 1
    print(
        f"config ok: {len(settings.assets)} assets, {len(settings.providers)} providers, "
        f"network {settings.network}, default model {settings.default_model}"
    )
    return 0
