"""Runs simulated providers as real aiohttp servers on 127.0.0.1, inside the caller's event loop.

Each `SimulatorServer` is one simulated provider, with its own port, faults and counters; run several to
test failover between providers serving the same model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from proxy.devnet.simulator.anthropic_api import add_anthropic_routes
from proxy.devnet.simulator.common import SIMULATOR_STATE, SimulatorState
from proxy.devnet.simulator.control import add_control_routes
from proxy.devnet.simulator.faults import FaultBook, FaultSpec
from proxy.devnet.simulator.gemini_api import add_gemini_routes
from proxy.devnet.simulator.openai_api import add_openai_routes

__all__ = [
    "DEFAULT_MODELS",
    "SimulatorServer",
    "Simulators",
    "create_simulator_app",
    "launch_simulators",
    "start_simulators",
]

DEFAULT_MODELS = (
    "gpt-4o-mini",
    "gpt-4o",
    "o3-mini",
    "text-embedding-3-small",
    "claude-3-5-haiku-latest",
    "claude-sonnet-4-5",
    "gemini-2.0-flash",
    "gemini-2.5-flash",
)
SHUTDOWN_TIMEOUT_S = 2.0


def create_simulator_app(
    *,
    name: str = "sim",
    seed: int = 0,
    api_key: str | None = None,
    models: Sequence[str] = DEFAULT_MODELS,
    context_window_tokens: int = 128_000,
) -> web.Application:
    """One simulated provider speaking all three formats, plus its control endpoint. Starts nothing."""
    assert context_window_tokens > 0
    app = web.Application(client_max_size=32 * 1024 * 1024)
    app[SIMULATOR_STATE] = SimulatorState(
        name=name,
        faults=FaultBook(seed=seed),
        api_key=api_key,
        models=tuple(models),
        context_window_tokens=context_window_tokens,
    )
    add_openai_routes(app)
    add_anthropic_routes(app)
    add_gemini_routes(app)
    add_control_routes(app)
    return app


@dataclass(frozen=True, slots=True)
class SimulatorServer:
    """A running simulated provider. Faults can be set through HTTP (`control_url`) or directly here."""

    name: str
    base_url: str  # http://127.0.0.1:<port>
    app: web.Application
    runner: web.AppRunner

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.base_url

    @property
    def gemini_base_url(self) -> str:
        return self.base_url

    @property
    def control_url(self) -> str:
        return f"{self.base_url}/_control"

    @property
    def state(self) -> SimulatorState:
        return self.app[SIMULATOR_STATE]

    def set_fault(self, model: str, spec: FaultSpec | None = None, **fields: Any) -> FaultSpec:
        """`set_fault("gpt-4o-mini", error_count=2, error_status=429, retry_after_s=3)`; model `*` = all."""
        assert spec is None or not fields
        chosen = spec if spec is not None else FaultSpec.model_validate(fields)
        self.state.faults.set(model, chosen)
        return chosen

    def clear_fault(self, model: str) -> None:
        self.state.faults.clear(model)

    def reset(self) -> None:
        """No faults, zero counters, empty prompt cache."""
        self.state.faults.reset()
        self.state.prompt_cache.clear()

    def stats(self) -> dict[str, dict[str, int]]:
        return self.state.faults.stats()

    async def stop(self) -> None:
        self.state.stopping.set()  # Wakes hanging and paced handlers so that cleanup is quick.
        await self.runner.cleanup()


@dataclass(frozen=True, slots=True)
class Simulators:
    """Running simulated providers by name. Attribute shortcuts refer to the first one."""

    servers: dict[str, SimulatorServer]

    def __getitem__(self, name: str) -> SimulatorServer:
        return self.servers[name]

    @property
    def first(self) -> SimulatorServer:
        return next(iter(self.servers.values()))

    @property
    def base_url(self) -> str:
        return self.first.base_url

    @property
    def openai_base_url(self) -> str:
        return self.first.openai_base_url

    @property
    def anthropic_base_url(self) -> str:
        return self.first.anthropic_base_url

    @property
    def gemini_base_url(self) -> str:
        return self.first.gemini_base_url

    @property
    def control_url(self) -> str:
        return self.first.control_url

    def reset(self) -> None:
        for server in self.servers.values():
            server.reset()

    async def stop(self) -> None:
        for server in self.servers.values():
            await server.stop()


async def launch_simulators(
    names: Sequence[str] = ("sim",),
    *,
    host: str = "127.0.0.1",
    ports: Sequence[int] | None = None,
    seed: int = 0,
    api_key: str | None = None,
    models: Sequence[str] = DEFAULT_MODELS,
    context_window_tokens: int = 128_000,
) -> Simulators:
    """Starts one server per name in the running loop (port 0: a free one). Call `stop()` when done."""
    assert names
    assert len(set(names)) == len(names)
    assert ports is None or len(ports) == len(names)
    servers: dict[str, SimulatorServer] = {}
    try:
        for index, name in enumerate(names):
            app = create_simulator_app(
                name=name,
                seed=seed,
                api_key=api_key,
                models=models,
                context_window_tokens=context_window_tokens,
            )
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
            await runner.setup()
            site = web.TCPSite(runner, host, ports[index] if ports else 0)
            await site.start()
            bound_host, bound_port = runner.addresses[0][:2]
            servers[name] = SimulatorServer(name, f"http://{bound_host}:{bound_port}", app, runner)
    except BaseException:
        await Simulators(servers).stop()
        raise
    return Simulators(servers)


@asynccontextmanager
async def start_simulators(names: Sequence[str] = ("sim",), **options: Any) -> AsyncIterator[Simulators]:
    """`async with start_simulators(("a", "b")) as sims:` — the servers stop on exit, even on error."""
    simulators = await launch_simulators(names, **options)
    try:
        yield simulators
    finally:
        await simulators.stop()
