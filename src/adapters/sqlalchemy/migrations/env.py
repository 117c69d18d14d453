"""Alembic environment for billing-core.

Run programmatically through :func:`adapters.sqlalchemy.schema.migrate` (which hands over an open
connection in ``config.attributes["connection"]``), or with the alembic CLI and the ini shipped
beside this package: ``alembic -c src/adapters/sqlalchemy/alembic.ini -x url=sqlite:///./billing.db
upgrade head`` (the URL may also come from ``BILLING_DATABASE_URL``).
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from adapters.sqlalchemy.engine import DEFAULT_URL, make_engine
from adapters.sqlalchemy.schema import declared_for
from adapters.sqlalchemy.tables import metadata

config = context.config


def _url() -> str:
    return (context.get_x_argument(as_dictionary=True).get("url")
            or config.get_main_option("sqlalchemy.url")
            or os.environ.get("BILLING_DATABASE_URL")
            or DEFAULT_URL)


def _configure(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True,
                      render_as_batch=connection.dialect.name == "sqlite",
                      include_object=declared_for(connection.dialect.name))


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True,
                      dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(_url())
    try:
        with engine.begin() as own:
            _configure(own)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
