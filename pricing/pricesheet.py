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
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from pricing.catalog import CatalogRowError
from pricing.collectors.base import (
    Capability,
    CollectionRequest,
    CollectionResult,
    CollectorError,
    PriceObservation,
)
from pricing.normalize import (
    CurrencyError,
    PriceError,
    UnknownGpuTypeError,
    canonical_gpu_type,
    parse_usd_price,
    require_usd,
)
from pricing.sheetfile import SheetRecord, read_sheet
from solver.domain import (
    GpuType,
    InstanceType,
    Offer,
    PurchaseOption,
    Region,
    ReservedTerm,
    Upfront,
    region_key,
)
from solver.errors import InputError

REQUIRED_COLUMNS = (
    "provider",
    "region",
    "instance_type",
    "gpu_type",
    "gpus_per_instance",
    "purchase_option",
    "price_usd_per_hour",
    "currency",
    "valid_from",
)
OPTIONAL_COLUMNS = ("zone", "term", "upfront", "valid_to", "vcpus", "memory_gib", "notes")
COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
LIST_KEY = "prices"
SOURCE_PREFIX = "price-sheet:"

E = TypeVar("E")

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

    def valid_at(self, moment: dt.datetime) -> bool:
        return self.valid_from <= moment and (self.valid_to is None or moment < self.valid_to)


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

    def __init__(self, file: str, errors: list[CatalogRowError]) -> None:
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


# ---------------------------------------------------------------------------------------------- reading


def read_price_sheet(path: Path | str, *, regions: Iterable[Region] | None = None) -> PriceSheet:
    """Read and check a price sheet; raise PriceSheetError listing every problem.

    With ``regions`` (the known regions of every provider), a row whose provider has no known region, or
    whose region is unknown, is a problem too; without, only the file itself is checked.
    """
    path = Path(path)
    errors: list[CatalogRowError] = []
    document = read_sheet(
        path,
        list_key=LIST_KEY,
        columns=COLUMNS,
        required=REQUIRED_COLUMNS,
        meta_keys=("source",),
        errors=errors,
    )
    known = None if regions is None else {region.key for region in regions}
    rows: list[PriceSheetRow] = []
    first_line: dict[tuple[str, dt.datetime], int] = {}
    for record in document.records:
        row = _row(record, known)
        if row is None:
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
        errors.append(CatalogRowError(document.file, 1, "", "no price rows"))
    if errors:
        raise PriceSheetError(document.file, sorted(errors, key=lambda error: error.line))
    source = document.meta.get("source", "").strip() or f"{SOURCE_PREFIX}{document.file}"
    return PriceSheet(file=document.file, source=source[:200], rows=tuple(rows))


def _row(record: SheetRecord, known_regions: set[str] | None) -> PriceSheetRow | None:
    provider = record.parse("provider", _slug)
    code = record.parse("region", _required)
    if provider is not None and code is not None and known_regions is not None:
        _check_region(record, provider, code, known_regions)
    instance_name = record.parse("instance_type", _required)
    gpu_label = record.parse("gpu_type", _required)
    gpu_type = None
    if gpu_label is not None and provider is not None and instance_name is not None:
        gpu_type = record.parse("gpu_type", lambda _: _gpu_type(provider, gpu_label, instance_name))
    gpus = record.parse("gpus_per_instance", _positive_int)
    option = record.parse("purchase_option", _enum(PurchaseOption, "purchase option"))
    term = record.parse("term", _optional_enum(ReservedTerm, "term"))
    upfront = record.parse("upfront", _optional_enum(Upfront, "upfront kind"))
    price = record.parse("price_usd_per_hour", _price)
    record.parse("currency", _currency)
    valid_from = record.parse("valid_from", _moment)
    valid_to = record.parse("valid_to", _optional_moment)
    if valid_from is not None and valid_to is not None and valid_to <= valid_from:
        record.error("valid_to", f"must be after valid_from ({valid_from.isoformat()})")
    vcpus = record.parse("vcpus", _optional_positive_number)
    memory = record.parse("memory_gib", _optional_positive_number)
    if record.reported:
        return None
    assert valid_from is not None  # parsed without error above
    try:
        offer = Offer(
            provider=provider,
            region=code,
            zone=record["zone"],
            instance_type=instance_name,
            gpu_type=gpu_type,
            gpus_per_instance=gpus,
            purchase_option=option,
            term=term,
            upfront=upfront,
            price_micro_usd_per_hour=price,
        )
        instance = InstanceType(
            provider=provider,
            name=instance_name,
            gpu_type=gpu_type,
            gpu_count=gpus,
            vcpus=vcpus,
            memory_gib=memory,
        )
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        column = ".".join(str(part) for part in first.get("loc", ())) or "term"
        column = {"price_micro_usd_per_hour": "price_usd_per_hour", "gpu_count": "gpus_per_instance"}.get(
            column, column
        )
        message = first["msg"].removeprefix("Value error, ")
        if message.startswith(f"{column}: "):
            message = message.removeprefix(f"{column}: ")
        else:  # a model-level check names its field at the start of its message
            named, separator, rest = message.partition(": ")
            if separator and named in COLUMNS:
                column, message = named, rest
        record.error(column, message)
        return None
    return PriceSheetRow(
        line=record.line,
        offer=offer,
        instance=instance,
        valid_from=valid_from,
        valid_to=valid_to,
        notes=record["notes"],
    )


def _check_region(record: SheetRecord, provider: str, code: str, known: set[str]) -> None:
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


# ------------------------------------------------------------------------------------------- parsers


def _required(value: str) -> str:
    if not value:
        raise ValueError("empty")
    return value


def _slug(value: str) -> str:
    if not value:
        raise ValueError("empty")
    if value != value.lower() or " " in value:
        raise ValueError(
            f"provider must be gpuplan's lower-case provider name (aws, lambda, ...), got {value!r}"
        )
    return value


def _gpu_type(provider: str, label: str, instance_type: str) -> GpuType:
    try:
        return canonical_gpu_type(provider, label, instance_type)
    except UnknownGpuTypeError as exc:
        raise ValueError(str(exc)) from None


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"not a whole number: {value!r}") from None
    if number <= 0:
        raise ValueError(f"must be a positive whole number, got {value!r}")
    return number


def _optional_positive_number(value: str) -> float | None:
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"not a number: {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"must be a positive number, got {value!r}")
    return number


def _price(value: str) -> int:
    try:
        return parse_usd_price(value)
    except PriceError as exc:
        raise ValueError(str(exc)) from None


def _currency(value: str) -> str:
    try:
        return require_usd(value)
    except CurrencyError as exc:
        raise ValueError(str(exc)) from None


def _enum(enum_type: type[E], what: str) -> Callable[[str], E]:
    def parse(value: str) -> E:
        try:
            return enum_type(value)  # type: ignore[call-arg]
        except ValueError:
            allowed = ", ".join(member.value for member in enum_type)  # type: ignore[attr-defined]
            raise ValueError(f"unknown {what} {value!r} (expected one of {allowed})") from None

    return parse


def _optional_enum(enum_type: type[E], what: str) -> Callable[[str], E | None]:
    parse = _enum(enum_type, what)
    return lambda value: parse(value) if value else None


def parse_moment(value: str) -> dt.datetime:
    """An ISO 8601 date-time with a time zone, or a date (midnight UTC), as aware UTC."""
    if not value:
        raise ValueError("empty")
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not an ISO 8601 date or date-time: {value!r}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"a date-time needs a time zone (e.g. 2026-01-01T00:00:00Z), got {value!r}")
    return moment.astimezone(dt.UTC)


_moment = parse_moment


def _optional_moment(value: str) -> dt.datetime | None:
    return parse_moment(value) if value else None


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
