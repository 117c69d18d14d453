"""``billing``: run, serve, worker, migrate, demo, close-period, dispatch, reconcile, grant, grants.

Every command builds the one container (``entrypoints.container``) from ``BILLING_*`` environment
variables, so the CLI and the HTTP service always use the same adapters.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from billing_core import BillingError, services
from billing_core.grants import GrantSource
from billing_core.money import format_credits, parse_dollars
from billing_core.permissions import Actor, Permission

if TYPE_CHECKING:
    from entrypoints.container import Container

app = typer.Typer(help="billing-core: billing engine for developer platforms.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)

HostOption = Annotated[str, typer.Option(help="Interface to bind.")]
PortOption = Annotated[int, typer.Option(help="TCP port.")]


def _container() -> Container:
    from entrypoints.container import Container

    return Container()


def _fail(exc: BillingError) -> None:
    typer.secho(f"error [{exc.code}]: {exc.message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema to the latest migration."""
    from entrypoints.container import migrate_database

    url = migrate_database()
    typer.echo(f"database is at the latest schema: {url}")


@app.command()
def demo() -> None:
    """Seed the demo organization (once) and print a fresh token for each role."""
    from entrypoints.demo import seed_demo

    container = _container()
    credentials = seed_demo(container.billing_context(), container.deliverers(),
                            progress=lambda msg: typer.echo(f"  demo: {msg}", err=True))
    typer.echo(f"organization: {credentials.organization_id}")
    for role, secret in credentials.tokens.items():
        typer.echo(f"{role:>14} token: {secret}")


WorkersOption = Annotated[int, typer.Option(min=1, max=64, help="Server processes (PostgreSQL only above 1).")]


@app.command()
def serve(host: HostOption = "127.0.0.1", port: PortOption = 8000, workers: WorkersOption = 1) -> None:
    """Serve the HTTP API (and console) with uvicorn, with the background worker as a process it
    supervises (BILLING_WORKER=process, the default), in each server process (thread) or not at all
    (false: run `billing worker` separately). Ctrl-C stops it cleanly."""
    from entrypoints.supervisor import SUPERVISED_ENV, MetricsDirectory, WorkerProcess

    settings = _container().settings()
    if workers > 1 and (settings.storage != "sqlalchemy" or settings.database_url.startswith("sqlite")):
        typer.secho("error [single_instance_storage]: --workers above 1 needs PostgreSQL "
                    "(BILLING_DATABASE_URL=postgresql+psycopg://...); SQLite and memory storage serve one "
                    "process", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2)
    # A process of its own needs storage it can share: not the in-memory store nor an in-memory SQLite.
    shared = settings.storage == "sqlalchemy" and ":memory:" not in settings.database_url \
        and "mode=memory" not in settings.database_url
    supervised = settings.worker == "process" and shared
    metrics_dir = MetricsDirectory()
    if workers > 1 or supervised:
        # Every process writes its metrics there; a scrape of any server process adds them all up.
        # Before the first import of prometheus_client, which picks its storage on import.
        metrics_dir.ensure()
    worker_process = WorkerProcess(os.environ) if supervised else None
    # uvicorn re-raises the SIGTERM it shut down on, with the handler it found: this one, so that the
    # worker is stopped here before the process ends (the default handler would end it at once).
    previous = signal.signal(signal.SIGTERM, _terminated)
    terminated = False
    try:
        if worker_process is not None:
            worker_process.start()
            os.environ[SUPERVISED_ENV] = "1"
        _serve(host, port, workers, settings.log_format)
    except _Terminated:
        terminated = True
    finally:
        if worker_process is not None:
            worker_process.stop()
            os.environ.pop(SUPERVISED_ENV, None)
        metrics_dir.remove()
        signal.signal(signal.SIGTERM, previous)
    if terminated:
        signal.raise_signal(signal.SIGTERM)  # end as uvicorn would have: killed by SIGTERM


class _Terminated(BaseException):
    """SIGTERM reached ``billing serve`` after uvicorn's graceful shutdown."""


def _terminated(signum: int, frame: object) -> None:
    raise _Terminated


def _serve(host: str, port: int, workers: int, log_format: str) -> None:
    import uvicorn

    from entrypoints.http.tcp import NoDelayHttpToolsProtocol
    from entrypoints.logs import uvicorn_log_config

    uvicorn.run("entrypoints.http.app:served_app", factory=True, host=host, port=port, workers=workers,
                log_config=uvicorn_log_config(log_format), access_log=False, http=NoDelayHttpToolsProtocol)


ParentOption = Annotated[int | None, typer.Option(hidden=True, help="Stop when this process is no longer the parent.")]


@app.command()
def worker(parent_pid: ParentOption = None) -> None:
    """Deliver the outbox and run scheduled jobs (period close) until Ctrl-C or SIGTERM, without
    HTTP: the worker process of a topology of web processes plus workers (and the one `billing
    serve` supervises, which passes --parent-pid)."""
    from entrypoints.logs import configure_logging
    from entrypoints.worker import SECOND_SQLITE_INSTANCE, BackgroundWorker, SqliteInstanceLock, stop_when_orphaned

    container = _container()
    settings = container.settings()
    configure_logging(settings.log_format)
    instance = SqliteInstanceLock(settings.database_url if settings.storage == "sqlalchemy" else "sqlite://")
    if not instance.acquire():
        typer.secho(SECOND_SQLITE_INSTANCE.format(path=instance.path), fg=typer.colors.YELLOW, err=True)
    background = BackgroundWorker(container.billing_context(), container.deliverers(),
                                  interval=settings.worker_interval_seconds,
                                  grant_catch_up_interval=settings.grant_catch_up_interval_seconds,
                                  grant_sweep_step=settings.grant_sweep_step)
    signal.signal(signal.SIGTERM, lambda *_: background.stop(timeout=0))
    if parent_pid is not None:
        stop_when_orphaned(background, parent_pid)
    typer.echo(f"billing worker {background.name}: delivering the outbox and running scheduled jobs", err=True)
    try:
        background.run_until_stopped()
    except KeyboardInterrupt:
        pass
    finally:
        instance.release()


@app.command()
def run(host: HostOption = "127.0.0.1", port: PortOption = 8000) -> None:
    """What `make run` does: migrate, seed the demo organization, print URL and tokens, serve."""
    from entrypoints.demo import seed_demo

    os.environ.setdefault("BILLING_ENV", "development")
    migrate()
    container = _container()
    credentials = seed_demo(container.billing_context(), container.deliverers(),
                            progress=lambda msg: typer.echo(f"  demo: {msg}", err=True))
    url = f"http://{host}:{port}"
    typer.echo(f"billing-core is serving at {url}  (console: {url}/console/, OpenAPI: {url}/openapi.json)")
    typer.echo(f"demo organization: {credentials.organization_id}")
    for role in ("primary-owner", "owner", "member"):
        typer.echo(f"{role} token: {credentials.tokens[role]}")
    typer.echo(f"service token (usage:write): {credentials.tokens['service']}")
    sys.stdout.flush()
    serve(host=host, port=port)


@app.command("close-period")
def close_period(
    period: Annotated[str | None, typer.Option(help="YYYY-MM; default: last month.")] = None,
    organization: Annotated[str | None, typer.Option(help="Only this organization id.")] = None,
) -> None:
    """Invoice uninvoiced usage up to the end of the period. Safe to re-run and to run twice at
    once (organizations the other run closed are reported as already closed). Exits 1 when some
    organizations could not be closed (listed; the others are closed), 2 on an error."""
    ctx = _container().billing_context()
    try:
        org_id = uuid.UUID(organization) if organization else None
    except ValueError:
        typer.secho("error [invalid_input]: --organization must be a UUID", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        typer.echo(f"\r  closed {done}/{total} organizations", nl=done == total, err=True)

    try:
        report = services.invoicing.close_period(ctx, period=period, organization_id=org_id, progress=progress)
    except BillingError as exc:
        _fail(exc)
        return
    typer.echo(f"period {report.period}: {report.invoices_created} invoice(s) created, "
               f"{report.already_closed} already closed, {report.without_usage} without usage "
               f"({time.monotonic() - started:.1f}s)")
    for failure in report.failed:
        typer.secho(f"FAILED {failure.organization_id}: [{failure.code}] {failure.message}", fg=typer.colors.RED,
                    err=True)
    if report.failed:
        typer.secho(f"{len(report.failed)} organization(s) could not be closed; re-run to retry them",
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1)


@app.command()
def dispatch(
    loop: Annotated[bool, typer.Option(help="Keep delivering every few seconds until Ctrl-C.")] = False,
    dead: Annotated[bool, typer.Option("--dead-letters", help="List dead-lettered messages and exit.")] = False,
    requeue: Annotated[list[str] | None, typer.Option(
        "--requeue", help="Give this dead-lettered message (id) one more delivery, due now; repeatable. "
                          "'all' requeues every dead letter.")] = None,
) -> None:
    """Deliver the outbox: legal invoices, emails, webhooks, auto-recharges (with retries)."""
    container = _container()
    ctx = container.billing_context()
    if requeue:
        try:
            ids = None if requeue == ["all"] else [uuid.UUID(value) for value in requeue]
        except ValueError:
            typer.secho("--requeue takes message ids (see --dead-letters) or 'all'", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=2) from None
        back = services.dispatch.requeue_dead_letters(ctx, message_ids=ids)
        typer.echo(f"requeued {len(back)} dead letter(s): {' '.join(map(str, back))}".rstrip(": "))
        if ids is not None and len(back) < len(ids):
            typer.secho(f"{len(ids) - len(back)} id(s) were not dead letters", fg=typer.colors.YELLOW, err=True)
        return
    if dead:
        for message in services.dispatch.dead_letters(ctx):
            typer.echo(f"{message.id} {message.topic} org={message.organization_id} attempts={message.attempts} "
                       f"last_error={message.last_error}")
        return
    deliverers = container.deliverers()
    while True:
        report = services.dispatch.dispatch(ctx, deliverers)
        typer.echo(f"sent {report.sent}, retrying {report.retried}, dead-lettered {report.dead}")
        if not loop:
            return
        time.sleep(5)


@app.command()
def reconcile(organization: Annotated[str | None, typer.Option(help="Only this organization id.")] = None) -> None:
    """Prove stored balances equal the ledger; exit 1 if any organization does not reconcile."""
    ctx = _container().billing_context()
    with ctx.uow() as uow:
        org_ids = [uuid.UUID(organization)] if organization else uow.organizations.ids()
    bad = 0
    for org_id in org_ids:
        report = services.reconcile.reconcile(ctx, organization_id=org_id)
        if not report.clean:
            bad += 1
            typer.secho(f"NOT CLEAN {org_id}: {report}", fg=typer.colors.RED)
    typer.echo(f"{len(org_ids) - bad}/{len(org_ids)} organizations reconcile")
    if bad:
        raise typer.Exit(code=1)


OPERATOR_SCOPES = frozenset({Permission.CREDITS_GRANT, Permission.BILLING_READ})
"""What the operator at the command line may do to an organization: grant credits and read."""


def _operator(container: Container, organization: str) -> Actor:
    """The platform's operator acting on ``organization``, which must exist (exit 2 otherwise)."""
    try:
        org_id = uuid.UUID(organization)
    except ValueError:
        typer.secho("error [invalid_input]: ORGANIZATION must be a UUID", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    try:
        with container.billing_context().uow() as uow:
            uow.organizations.get(org_id)
    except BillingError as exc:
        _fail(exc)
    return Actor(organization_id=org_id, subject="cli:operator", scopes=OPERATOR_SCOPES)


@app.command()
def grant(
    organization: Annotated[str, typer.Argument(help="The organization id.")],
    amount: Annotated[str, typer.Argument(help="Dollars, e.g. 25 or 12.50.")],
    description: Annotated[str, typer.Option(help="Shown on the balance history.")] = "Promotional credits",
    expires_at: Annotated[datetime | None, typer.Option(
        formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"], help="UTC expiry; default: never.")] = None,
    priority: Annotated[int, typer.Option(help="Among grants of equal expiry, lower is drawn first.")] = 0,
    source: Annotated[GrantSource, typer.Option(help="promotion or trial.")] = GrantSource.PROMOTION,
    request_id: Annotated[str | None, typer.Option(
        help="A UUID naming this grant: running the command again with it grants nothing more.")] = None,
    reason: Annotated[str | None, typer.Option(help="Why (kept in the audit trail).")] = None,
) -> None:
    """Grant promotional or trial credits to an organization (the operator's credits:grant)."""
    container = _container()
    actor = _operator(container, organization)
    try:
        request = uuid.UUID(request_id) if request_id else None
    except ValueError:
        typer.secho("error [invalid_input]: --request-id must be a UUID", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    try:
        made = services.wallet.create_grant(
            container.billing_context(), actor, organization_id=actor.organization_id,
            amount_micros=parse_dollars(amount, field="amount"), description=description, request_id=request,
            source=source, expires_at=expires_at.replace(tzinfo=UTC) if expires_at else None, priority=priority,
            reason=reason)
    except BillingError as exc:
        _fail(exc)
        return
    if made.replayed:
        typer.echo("already granted with this --request-id; nothing changed")
    if made.paid_uncovered_micros:
        typer.echo(f"{format_credits(made.paid_uncovered_micros)} paid usage no grant covered")
    if made.grant is not None:
        g = made.grant.grant
        typer.echo(f"grant {g.id}: {format_credits(g.remaining_micros)} {g.source} "
                   f"expires {g.expires_at.isoformat() if g.expires_at else 'never'} ({made.grant.status})")


@app.command()
def grants(organization: Annotated[str, typer.Argument(help="The organization id.")]) -> None:
    """List an organization's credit grants, newest first: source, remaining of granted, expiry, status."""
    container = _container()
    actor = _operator(container, organization)
    views = services.grants.list_grants(container.billing_context(), actor, organization_id=actor.organization_id)
    for view in views:
        g = view.grant
        typer.echo(f"{g.id} {g.source:<13} {format_credits(g.remaining_micros)} of {format_credits(g.amount_micros)} "
                   f"expires {g.expires_at.isoformat() if g.expires_at else 'never':<25} {view.status}")
    typer.echo(f"{len(views)} grant(s)")


def main() -> None:  # pragma: no cover - console script entry
    app()
