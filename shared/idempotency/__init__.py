"""Idempotency-Key: a retried create POST replays the first response instead of creating twice."""
