"""The project's own Prometheus metrics, on a registry of the app's (not the process global)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    processed: Counter
    dead_lettered: Counter
    store_write_seconds: Histogram
    transient_failures: Counter
    batch_size: Histogram
    dependency_up: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> Metrics:
        registry = registry or CollectorRegistry()
        return cls(
            registry=registry,
            processed=Counter(
                "karrot_events_processed",
                "Valid events stored and forwarded.",
                ["topic"],
                registry=registry,
            ),
            dead_lettered=Counter(
                "karrot_events_dead_lettered",
                "Poison messages sent to their dead-letter topic.",
                ["topic", "reason"],
                registry=registry,
            ),
            store_write_seconds=Histogram(
                "karrot_event_store_write_seconds",
                "Time of one batched event-store write.",
                registry=registry,
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            ),
            transient_failures=Counter(
                "karrot_transient_failures",
                "Waits caused by an unavailable dependency.",
                ["component"],
                registry=registry,
            ),
            batch_size=Histogram(
                "karrot_pipeline_batch_size",
                "Messages handled per agent step.",
                registry=registry,
                buckets=(1, 5, 10, 50, 100, 250, 500, 1000),
            ),
            # Set by the liveness watchdog's probes, so an outage shows even with no traffic.
            dependency_up=Gauge(
                "karrot_dependency_up",
                "1 while a dependency (broker, schema_registry, database) answers its probe.",
                ["component"],
                registry=registry,
            ),
        )
