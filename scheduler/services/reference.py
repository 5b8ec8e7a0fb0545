"""Reference data (providers, regions, GPU types, instance types): get-or-create by natural key.

Functions flush and never commit; the caller owns the transaction. Writers of reference data (a catalog
load, storing a collector's result, a fleet load) take ``lock_reference_data`` first, so that two of them
at once (two ``gpuplan catalog load`` on a fresh database) run one after the other instead of both
inserting the same rows and one failing on a unique constraint. A writer waits for the lock at most
``REFERENCE_LOCK_WAIT_S``; past that it fails with ``ReferenceDataBusyError``, which names the session that
holds the lock, instead of waiting for ever behind a transaction left open.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from scheduler.db.models import GpuTypeRow, InstanceTypeRow, ProviderRow, RegionRow
from scheduler.db.session import DatabaseError
from solver.domain import GPU_SPECS, GpuType, InstanceType, Provider, Region

REFERENCE_LOCK_KEY = 0x67707570_6C616E  # "gpuplan": one key for every writer of reference data
REFERENCE_LOCK_WAIT_S = 120.0
"""How long a writer of reference data waits for another to finish. A load of the shipped catalog (1,268
offers) holds the lock for less than its command's 2 s on PostgreSQL; minutes mean a transaction left open
(a stopped process, a console session)."""

_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for a lock wait that ran past lock_timeout


class ReferenceDataBusyError(DatabaseError):
    """Another transaction has held the reference-data lock for longer than this writer would wait."""


def lock_reference_data(session: Session, *, wait_s: float | None = None) -> None:
    """Wait until no other transaction writes reference data, and hold that until this one ends.

    Call it first in the transaction, before reading what exists. PostgreSQL: a transaction-level advisory
    lock (``pg_advisory_xact_lock``), released at commit or rollback; each later statement sees what the
    transaction before committed. The wait is bounded by ``wait_s`` (default ``REFERENCE_LOCK_WAIT_S``,
    read at the call; ``lock_timeout`` for this one statement, in a savepoint, so the transaction stays
    usable and keeps its own ``lock_timeout``); past it, ``ReferenceDataBusyError`` names the backend that
    holds the lock. SQLite: a write that changes nothing takes the database's write lock now (other
    writers wait up to the busy timeout), not at the first insert after the reads.
    """
    if wait_s is None:
        wait_s = REFERENCE_LOCK_WAIT_S
    if wait_s <= 0:
        raise ValueError(f"wait_s must be positive, got {wait_s}")
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        _lock_postgres(session, wait_s)
    elif dialect == "sqlite":
        session.execute(sa.update(GpuTypeRow).where(sa.false()).values(name=GpuTypeRow.name))


def _lock_postgres(session: Session, wait_s: float) -> None:
    timeout = f"{max(1, round(wait_s * 1000))}ms"
    try:
        with session.begin_nested():
            previous = session.execute(sa.text("SELECT current_setting('lock_timeout')")).scalar_one()
            session.execute(sa.text("SELECT set_config('lock_timeout', :t, true)"), {"t": timeout})
            session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": REFERENCE_LOCK_KEY})
            session.execute(sa.text("SELECT set_config('lock_timeout', :t, true)"), {"t": previous})
    except sa.exc.OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
            raise
        # the savepoint is rolled back: the transaction goes on, and can say who holds the lock
        raise ReferenceDataBusyError(
            f"waited {wait_s:g} s for the reference-data lock, held by {reference_lock_holder(session)}; "
            "retry when that transaction ends, or end it"
        ) from exc


def reference_lock_holder(session: Session) -> str:
    """Who holds the reference-data lock on PostgreSQL, in words ("nobody now" once it is free). What
    another role's session is doing is visible only to superusers and members of ``pg_read_all_stats``:
    then only its backend is named."""
    row = session.execute(
        sa.text(
            "SELECT l.pid, a.application_name, a.state, "
            "extract(epoch FROM now() - a.xact_start)::int AS open_s "
            "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid::bigint = :high AND l.objid::bigint = :low "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ),
        {"high": REFERENCE_LOCK_KEY >> 32, "low": REFERENCE_LOCK_KEY & 0xFFFFFFFF},
    ).first()
    if row is None:
        return "nobody now"
    if row.pid is None:
        return "a prepared transaction (see pg_prepared_xacts)"
    application = f" ({row.application_name})" if row.application_name else ""
    parts = [f"PostgreSQL backend {row.pid}{application}"]
    if row.state:
        parts.append(str(row.state))
    if row.open_s is not None:
        parts.append(f"in a transaction open for {row.open_s} s")
    return ", ".join(parts)


def instance_shapes(session: Session) -> dict[tuple[str, str], tuple[GpuType, int]]:
    """Every stored instance type: (provider, name) -> (GPU type, GPUs per instance)."""
    rows = session.execute(
        sa.select(ProviderRow.name, InstanceTypeRow.name, GpuTypeRow.name, InstanceTypeRow.gpu_count)
        .join(InstanceTypeRow.provider)
        .join(InstanceTypeRow.gpu_type)
    ).all()
    return {(provider, name): (GpuType(gpu), count) for provider, name, gpu, count in rows}


def provider_names(session: Session) -> list[str]:
    """The names of the providers in the database, sorted."""
    return list(session.scalars(sa.select(ProviderRow.name).order_by(ProviderRow.name)))


class ReferenceData:
    """An in-session cache of reference rows by natural key, creating what is missing."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.providers = {row.name: row for row in session.scalars(sa.select(ProviderRow))}
        self.regions = {
            (row.provider.name, row.code): row
            for row in session.scalars(sa.select(RegionRow).options(sa.orm.joinedload(RegionRow.provider)))
        }
        self.gpu_types = {row.name: row for row in session.scalars(sa.select(GpuTypeRow))}
        self.instance_types = {
            (row.provider.name, row.name): row
            for row in session.scalars(
                sa.select(InstanceTypeRow).options(sa.orm.joinedload(InstanceTypeRow.provider))
            )
        }
        self.created = 0

    def ensure_gpu_types(self) -> None:
        for spec in GPU_SPECS.values():
            if spec.gpu_type not in self.gpu_types:
                row = GpuTypeRow(
                    name=spec.gpu_type,
                    vendor=spec.vendor,
                    memory_gib=spec.memory_gib,
                    memory_bandwidth_gbps=spec.memory_bandwidth_gbps,
                )
                self.session.add(row)
                self.gpu_types[spec.gpu_type] = row
                self.created += 1

    def provider(self, provider: Provider) -> ProviderRow:
        row = self.providers.get(provider.name)
        if row is None:
            row = ProviderRow(name=provider.name, kind=provider.kind, display_name=provider.display_name)
            self.session.add(row)
            self.providers[provider.name] = row
            self.created += 1
        else:
            row.kind = provider.kind
            row.display_name = provider.display_name
        return row

    def region(self, region: Region, *, precision: str, location_source: str) -> RegionRow:
        provider = self.providers[region.provider]
        row = self.regions.get((region.provider, region.code))
        if row is None:
            row = RegionRow(provider=provider, code=region.code)
            self.session.add(row)
            self.regions[(region.provider, region.code)] = row
            self.created += 1
        row.display_name = region.display_name
        row.city = region.city
        row.country = region.country
        row.continent = region.continent
        row.lat = region.lat
        row.lon = region.lon
        row.jurisdictions = sorted(region.jurisdictions)
        row.location_precision = precision
        row.location_source = location_source
        return row

    def instance_type(self, instance: InstanceType) -> InstanceTypeRow:
        row = self.instance_types.get((instance.provider, instance.name))
        if row is None:
            row = InstanceTypeRow(
                provider=self.providers[instance.provider],
                name=instance.name,
                gpu_type=self.gpu_types[instance.gpu_type],
                gpu_count=instance.gpu_count,
            )
            self.session.add(row)
            self.instance_types[(instance.provider, instance.name)] = row
            self.created += 1
        row.vcpus = instance.vcpus
        row.memory_gib = instance.memory_gib
        return row

    def gpu_type(self, gpu_type: GpuType) -> GpuTypeRow:
        return self.gpu_types[gpu_type]


def region_rows_by_key(session: Session, keys: Iterable[str]) -> dict[str, RegionRow]:
    wanted = set(keys)
    rows = session.scalars(sa.select(RegionRow).options(sa.orm.joinedload(RegionRow.provider)))
    return {
        f"{row.provider.name}/{row.code}": row for row in rows if f"{row.provider.name}/{row.code}" in wanted
    }
