"""Run Alembic programmatically (the `ftq migrate` command and the embedded start-up)."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from alembic import command
from alembic.config import Config

# Found by name, not imported: the migrations import the models, so importing them here would
# tie `ftq.shared` and `ftq.migrations` into a cycle.
MIGRATIONS_PACKAGE = "ftq.migrations"


def script_location() -> Path:
    """The folder of the packaged Alembic scripts."""
    spec = find_spec(MIGRATIONS_PACKAGE)
    assert spec is not None and spec.submodule_search_locations, MIGRATIONS_PACKAGE
    return Path(next(iter(spec.submodule_search_locations)))


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the packaged migrations and the given database."""
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database up to `revision`."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    """Migrate the database down to `revision`."""
    command.downgrade(alembic_config(url), revision)
