"""Simulated LLM providers: real aiohttp servers on 127.0.0.1 that speak the providers' wire formats.

Owns the OpenAI format (`POST /v1/chat/completions` JSON and SSE, `POST /v1/embeddings`, `GET /v1/models`),
Anthropic Messages and Gemini generateContent, deterministic replies (seeded by the request) with
realistic usage, and fault injection per model (see proxy.devnet.simulator.control for the HTTP endpoint).
Must not import the adapters: it is the independent other side of their wire formats.

Start inside a running loop:

    async with start_simulators(("sim-a", "sim-b")) as sims:
        sims["sim-a"].openai_base_url        # http://127.0.0.1:<port>/v1
        sims["sim-b"].set_fault("gpt-4o-mini", error_count=1, error_status=429, retry_after_s=2)

or, for a demo that runs until it is stopped: `sims = await launch_simulators(); ...; await sims.stop()`.
"""

from proxy.devnet.simulator.faults import ANY_MODEL, FaultSpec
from proxy.devnet.simulator.server import (
    DEFAULT_MODELS,
    Simulators,
    SimulatorServer,
    create_simulator_app,
    launch_simulators,
    start_simulators,
)

__all__ = [
    "ANY_MODEL",
    "DEFAULT_MODELS",
    "FaultSpec",
    "SimulatorServer",
    "Simulators",
    "create_simulator_app",
    "launch_simulators",
    "start_simulators",
]
