"""Runs MegaRouter as a separate OS process (`python -m proxy serve`), for crash and multi-process tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from proxy.devnet.anvil import free_tcp_port
from proxy.settings import Settings

__all__ = ["ServerProcess", "run_server_process", "settings_to_toml"]

SERVER_READY_TIMEOUT_S = 30.0


def _toml_value(value: object) -> str:
    # JSON strings, numbers, booleans and arrays are valid TOML values.
    return json.dumps(value)


ALERT_SECRET_ENV = "MEGAROUTER_TEST_ALERT_SECRET_{index}"


def _table_lines(name: str, table: dict[str, object]) -> list[str]:
    """A TOML table; nested tables become `[name.sub]`, arrays of tables `[[name.sub]]`."""
    scalars = {key: value for key, value in table.items() if not isinstance(value, dict | list)}
    lines = ["", f"[{name}]"] + [
        f"{key} = {_toml_value(value)}" for key, value in scalars.items() if value is not None
    ]
    for key, value in table.items():
        if isinstance(value, dict):
            lines += _table_lines(f"{name}.{key}", value)
        elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            for index, item in enumerate(value):
                if name == "alerts" and key == "endpoints":
                    # The signing secret travels in the environment, as in production.
                    item = {k: v for k, v in item.items() if k != "secret"}
                    item["secret_env"] = ALERT_SECRET_ENV.format(index=index)
                lines += ["", f"[[{name}.{key}]]"] + [
                    f"{k} = {_toml_value(v)}" for k, v in item.items() if v is not None
                ]
        elif isinstance(value, list):
            lines.append(f"{key} = {_toml_value(value)}")
    return lines


def settings_to_toml(settings: Settings) -> str:
    """The config file a server process would read; secrets stay out (they travel in the environment)."""
    data = settings.model_dump(
        mode="json", exclude={"settlement_private_key", "providers", "assets", "admin_token"}
    )
    tables = {key: value for key, value in data.items() if isinstance(value, dict)}
    lines = [
        f"{key} = {_toml_value(value)}"
        for key, value in data.items()
        if value is not None and key not in tables
    ]
    for name, table in tables.items():
        lines += _table_lines(name, table)
    for asset in settings.assets:
        lines += ["", "[[assets]]"] + [
            f"{key} = {_toml_value(value)}" for key, value in asset.model_dump().items()
        ]
    for name, provider in settings.providers.items():
        lines += [
            "",
            f'[providers."{name}"]',
            f"api_kind = {_toml_value(provider.api_kind)}",
            f"base_url = {_toml_value(provider.base_url)}",
            'api_key_env = "MEGAROUTER_TEST_PROVIDER_KEY"',
        ]
    return "\n".join(lines) + "\n"


def _secrets_environ(settings: Settings) -> dict[str, str]:
    environ = {
        "MEGAROUTER_SETTLEMENT_PRIVATE_KEY": settings.settlement_private_key.get_secret_value(),
        "MEGAROUTER_TEST_PROVIDER_KEY": "sim-key",
    }
    if settings.admin_token is not None:
        environ["MEGAROUTER_ADMIN_TOKEN"] = settings.admin_token.get_secret_value()
    for index, endpoint in enumerate(settings.alerts.endpoints):
        environ[ALERT_SECRET_ENV.format(index=index)] = endpoint.secret.get_secret_value()
    return environ


class ServerProcess:
    def __init__(self, process: asyncio.subprocess.Process, base_url: str, port: int) -> None:
        self.process = process
        self.base_url = base_url
        self.port = port

    async def wait_exit(self, timeout_s: float = 30.0) -> int:
        async with asyncio.timeout(timeout_s):
            return await self.process.wait()


async def _wait_healthy(base_url: str, process: asyncio.subprocess.Process) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SERVER_READY_TIMEOUT_S
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0)) as session:
        while loop.time() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"server exited early with code {process.returncode}")
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with session.get(f"{base_url}/healthz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"server at {base_url} not healthy within {SERVER_READY_TIMEOUT_S} s")


@contextlib.asynccontextmanager
async def run_server_process(
    settings: Settings, config_dir: Path, *, log_name: str = "server.log", port: int | None = None
) -> AsyncIterator[ServerProcess]:
    """`port`: to restart a process where one died (the same host and port is the same instance name)."""
    port = free_tcp_port() if port is None else port
    settings = settings.model_copy(update={"port": port, "log_format": "json"})
    config_path = config_dir / "megarouter.toml"
    config_path.write_text(settings_to_toml(settings))
    environ = {**os.environ, **_secrets_environ(settings)}
    with open(config_dir / log_name, "ab") as log_file:  # noqa: ASYNC230 - test set-up, once per process.
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "proxy",
            "serve",
            "--config",
            str(config_path),
            env=environ,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        await _wait_healthy(base_url, process)
        yield ServerProcess(process, base_url, port)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
