"""Reference data (providers, regions, GPU types, instance types): get-or-create by natural key.

Functions flush and never commit; the caller owns the transaction. Writers of reference data (a catalog
load, storing a collector's result, a fleet load) take ``lock_reference_data`` first, so that two of them
at once (two ``gpuplan catalog load`` on a fresh database) run one after the other instead of both
inserting the same rows and one failing on a unique constraint.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from scheduler.db.models import GpuTypeRow, InstanceTypeRow, ProviderRow, RegionRow
from solver.domain import GPU_SPECS, GpuType, InstanceType, Provider, Region

REFERENCE_LOCK_KEY = 0x67707570_6C616E  # "gpuplan": one key for every writer of reference data


def lock_reference_data(session: Session) -> None:
    """Wait until no other transaction writes reference data, and hold that until this one ends.

    Call it first in the transaction, before reading what exists. PostgreSQL: a transaction-level advisory
    lock (``pg_advisory_xact_lock``), released at commit or rollback; each later statement sees what the
    transaction before committed. SQLite: a write that changes nothing takes the database's write lock now
    (other writers wait up to the busy timeout), not at the first insert after the reads.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": REFERENCE_LOCK_KEY})
    elif dialect == "sqlite":
        session.execute(sa.update(GpuTypeRow).where(sa.false()).values(name=GpuTypeRow.name))


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
