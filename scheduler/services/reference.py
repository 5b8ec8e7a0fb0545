"""Reference data (providers, regions, GPU types, instance types): get-or-create by natural key.

Functions flush and never commit; the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from scheduler.db.models import GpuTypeRow, InstanceTypeRow, ProviderRow, RegionRow
from solver.domain import GPU_SPECS, GpuType, InstanceType, Provider, Region


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

    def region_by_key(self, key: str) -> RegionRow | None:
        provider, _, code = key.partition("/")
        return self.regions.get((provider, code))

    def gpu_type(self, gpu_type: GpuType) -> GpuTypeRow:
        return self.gpu_types[gpu_type]


def region_rows_by_key(session: Session, keys: Iterable[str]) -> dict[str, RegionRow]:
    wanted = set(keys)
    rows = session.scalars(sa.select(RegionRow).options(sa.orm.joinedload(RegionRow.provider)))
    return {
        f"{row.provider.name}/{row.code}": row for row in rows if f"{row.provider.name}/{row.code}" in wanted
    }
