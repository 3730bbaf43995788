"""Filtering with remembered request shapes (`static_pools`) keeps exactly the deployments, in the same
order, and counts exactly the exclusions that filtering afresh does, whatever the request's size, ceilings
and shape, and however many requests went through the memo before.

Method: Hypothesis draws request shapes and sizes over the real catalog; one memo serves every example of a
run, so remembered shapes are reused with other sizes and ceilings.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.catalog import load_catalog
from proxy.routing.requirements import (
    STATIC_POOLS_MAX,
    PriceCeiling,
    RequestNeeds,
    RouteRequest,
    StaticPools,
    filter_deployments,
)

CATALOG = tuple(load_catalog())
PROVIDERS = sorted({model.provider for model in CATALOG})
MEMO: StaticPools = {}

providers_available = st.frozensets(st.sampled_from(PROVIDERS), min_size=1)
ceilings = st.none() | st.builds(
    PriceCeiling,
    input_nano_usd_per_mtok=st.integers(0, 20_000_000_000),
    output_nano_usd_per_mtok=st.none() | st.integers(0, 80_000_000_000),
    request_nano_usd=st.none() | st.integers(0, 10_000_000),
)
routes = st.builds(
    RouteRequest,
    max_price=ceilings,
    providers=st.lists(st.sampled_from(PROVIDERS), max_size=3, unique=True).map(tuple),
    require=st.lists(st.sampled_from(["tools", "vision", "json_mode", "reasoning"]), unique=True).map(tuple),
)
needs = st.builds(
    RequestNeeds,
    # Small requests fit every window (the memo's shortcut); large ones are sized model by model.
    prompt_tokens=st.integers(0, 4_000) | st.integers(0, 2_000_000),
    output_tokens_reserved=st.integers(1, 4_000) | st.integers(1, 100_000),
    tools=st.booleans(),
    vision=st.booleans(),
    json_mode=st.booleans(),
    streaming=st.booleans(),
    content_part_types=st.frozensets(st.sampled_from(["text", "image_url", "input_audio", "file"])),
)
allow_lists = st.none() | st.frozensets(st.sampled_from([model.id for model in CATALOG[:40]]))


@settings(max_examples=300, deadline=None)
@given(route=routes, request_needs=needs, available=providers_available, allowed=allow_lists)
def test_remembered_shapes_filter_exactly_as_afresh(
    route: RouteRequest,
    request_needs: RequestNeeds,
    available: frozenset[str],
    allowed: frozenset[str] | None,
) -> None:
    def filtered(memo: StaticPools | None) -> object:
        return filter_deployments(
            CATALOG,
            route=route,
            needs=request_needs,
            providers_available=available,
            models_allowed=allowed,
            static_pools=memo,
        )

    expected = filtered(None)
    assert filtered(MEMO) == expected
    assert filtered(MEMO) == expected  # Now remembered: the same again.
    assert len(MEMO) <= STATIC_POOLS_MAX
