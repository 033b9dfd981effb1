"""Gauges computed when Prometheus scrapes: jobs by status (database) and queue depth (Redis)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session

from ftq.shared.observability import repository

JOB_STATUSES = ("queued", "uploading", "submitted", "running", "succeeded", "failed", "cancelled")
# kombu's Redis transport keeps priorities 3, 6 and 9 of a queue in sibling lists.
PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


class JobsCollector(Collector):
    """`ftq_jobs{status}` from one GROUP BY on the jobs table."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def collect(self) -> Iterable[Metric]:
        """One gauge sample per status (0 for statuses no job has)."""
        counts = repository.jobs_by_status(self.session)
        gauge = GaugeMetricFamily("ftq_jobs", "Jobs by status", labels=["status"])
        for status in sorted(set(JOB_STATUSES) | set(counts)):
            gauge.add_metric([status], counts.get(status, 0))
        yield gauge


def redis_queue_depths(broker_url: str, queues: Sequence[str]) -> dict[str, int] | None:
    """Messages waiting per queue (LLEN of its lists); None when Redis does not answer."""
    import redis

    client = redis.Redis.from_url(broker_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        with client.pipeline(transaction=False) as pipe:
            for queue in queues:
                for suffix in PRIORITY_SUFFIXES:
                    pipe.llen(queue + suffix)
            lengths = pipe.execute()
    except redis.RedisError:
        return None
    finally:
        client.close()
    step = len(PRIORITY_SUFFIXES)
    return {q: sum(lengths[i * step : (i + 1) * step]) for i, q in enumerate(queues)}


class QueueCollector(Collector):
    """`ftq_queue_depth{queue}` and `ftq_broker_up`; the embedded memory broker reports 0."""

    def __init__(self, broker_url: str, queues: Sequence[str]) -> None:
        self.broker_url = broker_url
        self.queues = tuple(queues)

    def collect(self) -> Iterable[Metric]:
        """Read every queue's length in one round trip."""
        if self.broker_url.startswith(("redis://", "rediss://")):
            depths = redis_queue_depths(self.broker_url, self.queues)
        else:
            depths = dict.fromkeys(self.queues, 0)
        up = GaugeMetricFamily("ftq_broker_up", "Whether the broker answered this scrape")
        up.add_metric([], 0 if depths is None else 1)
        yield up
        gauge = GaugeMetricFamily(
            "ftq_queue_depth", "Celery messages waiting per queue", labels=["queue"]
        )
        for queue, depth in (depths or {}).items():
            gauge.add_metric([queue], depth)
        yield gauge
