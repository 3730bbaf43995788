"""Hooks through which observability (metrics, span attributes) sees the pipeline, without serving knowing
what observes it: one call per usage event once it has committed, one per finished upstream attempt.

An observer is called synchronously and must be cheap; one that raises is logged and skipped, because by
then the request's money is already resolved and the caller's answer must not depend on a metrics bug.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import structlog

from proxy.serving.usage_log import Attempt, UsageEvent

__all__ = ["AttemptObserver", "UsageObserver", "notify"]

UsageObserver = Callable[[UsageEvent], None]
AttemptObserver = Callable[[Attempt], None]
T = TypeVar("T")
log = structlog.get_logger("megarouter.observers")


def notify(observers: Sequence[Callable[[T], None]], value: T) -> None:
    for observer in observers:
        try:
            observer(value)
        except Exception:
            log.exception("observer_failed", observer=getattr(observer, "__qualname__", repr(observer)))
