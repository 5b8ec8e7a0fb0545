"""Price sheets: prices people write down, for providers without a pricing API and for negotiated prices.

A sheet is a CSV or YAML file (format in docs/collectors.md) of rows: provider, region, zone, instance type,
GPU type and count, purchase option (with term and upfront kind for reserved), price in USD per
instance-hour, currency (USD only) and the period the price is valid for. ``read_price_sheet`` checks every
row and raises ``PriceSheetError`` listing every problem with file, line and column; a sheet with any
problem is rejected as a whole, because a person wrote it and a half-loaded sheet would silently lose the
rows they meant. ``PriceSheetCollector`` implements the collector interface over one sheet: each row
becomes a ``PriceObservation`` observed at its ``valid_from``; rows whose validity has ended (or not
begun) at the request's ``now`` are skipped with the reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pricing.collectors.base import (
    Capability,
    CollectionRequest,
    CollectionResult,
    CollectorError,
    PriceObservation,
)
from pricing.rows import (
    PriceSheetRecord,
    RawRecord,
    RowError,
    check_record,
    columns,
    parse_moment,
    required_columns,
    sorted_errors,
)
from pricing.sheetfile import read_sheet
from solver.domain import GpuType, InstanceType, Offer, PurchaseOption, Region, region_key
from solver.errors import InputError

__all__ = [
    "COLUMNS",
    "REQUIRED_COLUMNS",
    "PriceSheet",
    "PriceSheetCollector",
    "PriceSheetError",
    "PriceSheetRow",
    "parse_moment",
    "read_price_sheet",
    "sheet_collector_name",
]

REQUIRED_COLUMNS = required_columns(PriceSheetRecord)
COLUMNS = columns(PriceSheetRecord)
LIST_KEY = "prices"
SOURCE_PREFIX = "price-sheet:"

OPTION_CAPABILITY: dict[PurchaseOption, Capability] = {
    PurchaseOption.ON_DEMAND: Capability.ON_DEMAND,
    PurchaseOption.FLEX_START: Capability.ON_DEMAND,
    PurchaseOption.SPOT: Capability.SPOT,
    PurchaseOption.RESERVED: Capability.RESERVED,
    PurchaseOption.CAPACITY_BLOCK: Capability.CAPACITY_BLOCKS,
}
"""Which requested capability a row's purchase option falls under (flex-start is bought like on-demand)."""


@dataclass(frozen=True)
class PriceSheetRow:
    line: int
    offer: Offer
    instance: InstanceType
    valid_from: dt.datetime
    valid_to: dt.datetime | None
    notes: str


@dataclass(frozen=True)
class PriceSheet:
    file: str
    source: str
    """The observations' source: the sheet's ``source`` (YAML) or ``price-sheet:<file name>``."""
    rows: tuple[PriceSheetRow, ...]

    @property
    def providers(self) -> frozenset[str]:
        return frozenset(row.offer.provider for row in self.rows)


class PriceSheetError(InputError):
    """The sheet has problems; ``errors`` lists every one of them. Nothing of the sheet is loaded."""

    MAX_LISTED = 20

    def __init__(self, file: str, errors: list[RowError]) -> None:
        self.file = file
        self.errors = errors
        listed = [f"  {error}" for error in errors[: self.MAX_LISTED]]
        if len(errors) > self.MAX_LISTED:
            listed.append(f"  ... and {len(errors) - self.MAX_LISTED} more")
        count = f"{len(errors)} problem{'s' if len(errors) != 1 else ''}"
        super().__init__(f"price sheet {file}: {count}; nothing was loaded\n" + "\n".join(listed))

    def summary(self) -> str:
        """One line: the count and the first problem."""
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        return f"price sheet {self.file}: {self.errors[0]}{more}; nothing was loaded"


InstanceShapes = Mapping[tuple[str, str], tuple[GpuType, int]]
"""Stored instance types: (provider, name) -> (GPU type, GPUs per instance)."""


# ---------------------------------------------------------------------------------------------- reading


def read_price_sheet(
    path: Path | str,
    *,
    regions: Iterable[Region] | None = None,
    instance_types: InstanceShapes | None = None,
) -> PriceSheet:
    """Read and check a price sheet; raise PriceSheetError listing every problem.

    With ``regions`` (the known regions of every provider), a row whose provider has no known region, or
    whose region is unknown, is a problem too; with ``instance_types`` (those already stored), so is a row
    whose instance type is stored with other GPUs. Without them only the file itself is checked. Two rows
    of one instance type must give the same GPUs either way.
    """
    path = Path(path)
    errors: list[RowError] = []
    document = read_sheet(path, PriceSheetRecord, list_key=LIST_KEY, meta_keys=("source",), errors=errors)
    known = None if regions is None else {region.key for region in regions}
    shapes: dict[tuple[str, str], tuple[GpuType, int, str]] = {
        key: (gpu, count, "stored in the database") for key, (gpu, count) in (instance_types or {}).items()
    }
    rows: list[PriceSheetRow] = []
    first_line: dict[tuple[str, dt.datetime], int] = {}
    for record in document.records:
        item = check_record(PriceSheetRecord, record)
        if item is not None and known is not None:
            _check_region(record, item.provider, item.region, known)
        if item is None or record.failed:
            continue
        row = PriceSheetRow(
            line=record.line,
            offer=item.to_offer(),
            instance=item.to_instance(),
            valid_from=item.valid_from,
            valid_to=item.valid_to,
            notes=item.notes,
        )
        if not _same_shape(record, row.instance, shapes):
            continue
        identity = (row.offer.key, row.valid_from)
        if identity in first_line:
            record.error(
                "valid_from",
                f"duplicate price for {row.offer.key} from {row.valid_from.isoformat()} "
                f"(first on line {first_line[identity]})",
            )
            continue
        first_line[identity] = row.line
        rows.append(row)
    if not errors and not rows:
        errors.append(RowError(document.file, 1, "", "no price rows"))
    if errors:
        raise PriceSheetError(document.file, sorted_errors(errors))
    source = document.meta.get("source", "").strip() or f"{SOURCE_PREFIX}{document.file}"
    return PriceSheet(file=document.file, source=source[:200], rows=tuple(rows))


def _same_shape(
    record: RawRecord, instance: InstanceType, shapes: dict[tuple[str, str], tuple[GpuType, int, str]]
) -> bool:
    """Whether the row gives its instance type the GPUs it has elsewhere (stored, or on an earlier row)."""
    key = (instance.provider, instance.name)
    known = shapes.setdefault(key, (instance.gpu_type, instance.gpu_count, f"on line {record.line}"))
    if (known[0], known[1]) == (instance.gpu_type, instance.gpu_count):
        return True
    record.error(
        "gpus_per_instance" if known[0] == instance.gpu_type else "gpu_type",
        f"instance type {instance.provider}/{instance.name} has {instance.gpu_count} x "
        f"{instance.gpu_type.value} here but {known[1]} x {known[0].value} {known[2]}: "
        "one instance type has one shape",
    )
    return False


def _check_region(record: RawRecord, provider: str, code: str, known: set[str]) -> None:
    if region_key(provider, code) in known:
        return
    of_provider = sorted(key.partition("/")[2] for key in known if key.startswith(f"{provider}/"))
    if not of_provider:
        record.error(
            "provider",
            f"unknown provider {provider!r}: no regions are known for it "
            "(load the catalog first: `gpuplan catalog load`)",
        )
        return
    shown = ", ".join(of_provider[:12]) + (", ..." if len(of_provider) > 12 else "")
    record.error(
        "region", f"unknown region {region_key(provider, code)!r} (known {provider} regions: {shown})"
    )


# --------------------------------------------------------------------------------------------- collector


def sheet_collector_name(path: Path | str) -> str:
    """The collector name of a sheet: ``sheet:<file name>`` (a provider slug never holds a colon)."""
    return f"sheet:{Path(path).name}"


class PriceSheetCollector:
    """The collector interface over one price sheet.

    Its name (``provider``) is ``sheet:<file name>``: a sheet may list several providers. The ingest
    service hands it the known regions of every provider; it uses ``Region.key`` of each, so the mapping's
    keys do not matter. The sheet is read at every ``collect`` (an edited file is picked up), and a sheet
    with any problem raises ``CollectorError`` (nothing of it is collected; ``read_price_sheet`` lists
    every problem).
    """

    capabilities = frozenset(
        {Capability.ON_DEMAND, Capability.SPOT, Capability.RESERVED, Capability.CAPACITY_BLOCKS}
    )

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @property
    def provider(self) -> str:
        return sheet_collector_name(self.path)

    def read(self, regions: Iterable[Region] | None = None) -> PriceSheet:
        return read_price_sheet(self.path, regions=regions)

    def collect(self, request: CollectionRequest) -> CollectionResult:
        try:
            sheet = self.read(request.regions.values())
        except PriceSheetError as exc:
            raise CollectorError(self.provider, exc.summary()) from exc
        result = CollectionResult(provider=self.provider)
        for row in sheet.rows:
            location = f"{sheet.file}:{row.line}"
            if OPTION_CAPABILITY[row.offer.purchase_option] not in request.capabilities:
                result.skip(location, f"{row.offer.purchase_option.value} prices were not requested")
            elif row.valid_to is not None and row.valid_to <= request.now:
                result.skip(location, f"{row.offer.key}: validity ended {row.valid_to.isoformat()}")
            elif row.valid_from > request.now:
                result.skip(location, f"{row.offer.key}: not valid before {row.valid_from.isoformat()}")
            else:
                result.prices.append(
                    PriceObservation(
                        offer=row.offer,
                        instance=row.instance,
                        observed_at=row.valid_from,
                        source=sheet.source,
                    )
                )
        return result
