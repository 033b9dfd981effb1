"""The datasets domain's hooks, where the jobs domain above it connects (see ftq.shared.hooks)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ftq.shared.hooks import Hook
from ftq.shared.models import Dataset

# A dataset finished validating (ready or invalid): the jobs waiting for it are released or failed.
validated: Hook[[Session, Dataset], None] = Hook("datasets.validated")
