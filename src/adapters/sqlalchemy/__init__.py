"""SQLAlchemy 2.x storage: SQLite (default) and PostgreSQL through psycopg 3.

Typical wiring (done by the composition root)::

    engine = make_engine("sqlite:///./billing.db")   # or postgresql+psycopg://...
    migrate(engine)                                    # alembic upgrade head
    uow = sqlalchemy_uow_factory(engine)               # BillingContext(uow=uow, ...)
"""

from adapters.sqlalchemy.engine import DEFAULT_URL, make_engine
from adapters.sqlalchemy.schema import migrate
from adapters.sqlalchemy.uow import SqlAlchemyUnitOfWork, sqlalchemy_snapshot_factory, sqlalchemy_uow_factory

__all__ = ["DEFAULT_URL", "SqlAlchemyUnitOfWork", "make_engine", "migrate", "sqlalchemy_snapshot_factory",
           "sqlalchemy_uow_factory"]
