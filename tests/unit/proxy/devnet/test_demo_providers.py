"""The demo serves a provider for real exactly when its key is in the environment, else the simulator."""

from __future__ import annotations

from proxy.catalog import PROVIDER_BASE_URLS, load_catalog
from proxy.devnet.providers import demo_providers


def test_a_provider_with_a_key_is_real_and_the_others_simulated() -> None:
    simulator = "http://127.0.0.1:9999"
    providers, real = demo_providers(
        load_catalog(),
        simulator_base_url=simulator,
        environ={"OPENAI_API_KEY": "sk-real", "ANTHROPIC_API_KEY": ""},
    )
    assert real == ["openai"]
    assert providers["openai"].base_url == PROVIDER_BASE_URLS["openai"]
    key = providers["openai"].api_key
    assert key is not None
    assert key.get_secret_value() == "sk-real"
    assert providers["anthropic"].base_url == simulator
    assert providers["google"].base_url == simulator
    assert providers["groq"].base_url == f"{simulator}/v1"


def test_every_catalog_provider_but_azure_has_a_known_public_api() -> None:
    assert set(load_catalog().providers()) - set(PROVIDER_BASE_URLS) <= {"azure"}
