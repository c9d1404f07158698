"""Prometheus metrics of the reward server (``GET /metrics``), defined once per process.

Each server process exposes its own numbers; Prometheus sums replicas. Label values are
bounded: profiles and models come from the profiles file, components and error codes from
the code, endpoints from the routes.
"""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

REQUESTS = Counter("harmo_requests_total", "HTTP requests by endpoint, profile and status code",
                   ["endpoint", "profile", "status"])
REQUEST_LATENCY = Histogram("harmo_request_latency_seconds", "HTTP request latency by endpoint", ["endpoint"],
                            buckets=_LATENCY)
ITEMS = Counter("harmo_items_total", "Scored items by profile and status (ok, error: with errors, null: no reward)",
                ["profile", "status"])
COMPONENT_LATENCY = Histogram("harmo_component_latency_seconds",
                              "Time per request spent on each component", ["component"], buckets=_LATENCY)
ITEM_ERRORS = Counter("harmo_item_errors_total", "Per-item errors (verifier timeouts included) by component and code",
                      ["component", "code"])
BATCH_SIZE = Histogram("harmo_model_batch_size", "Items per model batch", ["model"],
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
QUEUE_WAIT = Histogram("harmo_model_queue_wait_seconds", "Time an item waited in a model's queue", ["model"],
                       buckets=_LATENCY)
ADMISSION = Counter("harmo_model_admission_total", "Items offered to a model: admitted, refused (typed "
                    "overloaded) or queue_full (the request answered 503)", ["model", "outcome"])
QUEUE_DEPTH = Gauge("harmo_model_queue_depth", "Items waiting in a model's queue", ["model"])
CACHE_HITS = Counter("harmo_cache_hits_total", "Result cache hits by component", ["component"])
CACHE_MISSES = Counter("harmo_cache_misses_total", "Result cache misses by component", ["component"])
CACHE_ROUND_TRIPS = Counter("harmo_cache_round_trips_total", "Round trips to Redis")
REDIS_ERRORS = Counter("harmo_redis_errors_total", "Failed Redis operations (scoring went on uncached)", ["op"])
GROUPS = Counter("harmo_groups_total", "Cross-request GRPO groups computed, complete or at their deadline", ["status"])
GROUPS_OPEN = Gauge("harmo_groups_open", "Cross-request GRPO groups waiting for members")
GROUPS_RETAINED = Gauge("harmo_groups_retained", "Computed groups kept in this process to answer retried members")
GROUP_MEMBERS = Counter("harmo_group_members_total", "Members joined to cross-request groups", ["store"])
GROUP_STORE_ROUND_TRIPS = Counter("harmo_group_store_round_trips_total", "Round trips to the shared group store")
GROUP_STORE_FALLBACKS = Counter("harmo_group_store_fallbacks_total",
                                "Groups assembled in-process because the shared group store was unreachable")
