"""Row models: the columns of every CSV file gpuplan reads (and of price sheets and discount files in YAML).

One pydantic model per file format; each field is a column, and its ``description`` gives the unit and the
meaning (the schema as data: ``columns(model)`` lists them, and docs/catalog.md, docs/collectors.md and
docs/formats.md describe the same columns). Values arrive as text, exactly as written (YAML scalars are
not turned into floats or dates), and the column types below parse that text with gpuplan's own messages
and ranges, so that one parser checks a CSV cell and a YAML value alike.

``check_record(model, record)`` validates one record (a ``csv.DictReader`` row or a YAML mapping) and
reports every problem of it at once as ``file:line: column NAME: message`` (``RowError``): each bad
column, and the rules across columns (``RowModel.row_rules``, e.g. "a reserved offer needs a term") over
the columns that did parse. ``read_csv_records`` reads a whole CSV file through ``pricing.files`` and checks
its header. The file loaders (``pricing.catalog``, ``pricing.pricesheet``, ``pricing.discounts``,
``scheduler.services.scenarios``) add the checks that need more than one row (unknown references,
duplicates) and report every problem of every file together.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Annotated, Any, ClassVar, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from pricing.files import UnreadableFileError, csv_records, read_text
from pricing.normalize import (
    CurrencyError,
    PriceError,
    UnknownGpuTypeError,
    canonical_gpu_type,
    gpu_type_from_alias,
    parse_usd_price,
    require_usd,
)
from solver.domain import (
    MAX_GPUS_PER_INSTANCE,
    MAX_INSTANCES,
    MAX_LATENCY_MS,
    MAX_MEMORY_GIB,
    MAX_VCPUS,
    Continent,
    GpuType,
    InstanceType,
    Offer,
    OfferFlag,
    ProviderKind,
    PurchaseOption,
    ReservedTerm,
    Upfront,
    check_country,
)
from solver.jurisdictions import EEA_MEMBERS, EU_MEMBERS

R = TypeVar("R", bound="RowModel")
E = TypeVar("E", bound=Enum)

FLAG_SEPARATOR = ";"

EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)
"""Times read from files lie in [EARLIEST, LATEST) (UTC)."""

PRECISIONS = ("metro", "state", "country")
"""How precisely a region's location is known: a city, a US state, or only a country."""


# -------------------------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class RowError:
    """One problem in one file: ``offers.csv:12: column price_usd_per_hour: not a number: 'abc'``."""

    file: str
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        if not self.column:
            return f"{where}: {self.message}"
        return f"{where}: column {self.column}: {self.message}"


def sorted_errors(errors: list[RowError]) -> list[RowError]:
    """By line, keeping the order of problems found on the same line."""
    return sorted(errors, key=lambda error: error.line)


@dataclass
class RawRecord:
    """One record of a file as text (a CSV row or a YAML mapping), with where each value was written."""

    file: str
    line: int
    values: dict[str, str]
    errors: list[RowError]
    value_lines: dict[str, int] = field(default_factory=dict)
    """The line of each value (YAML); the record's line otherwise."""
    reported: set[str] = field(default_factory=set)
    """Columns with a problem already reported (a second one on the same column would only repeat it)."""

    def __getitem__(self, column: str) -> str:
        return self.values.get(column, "").strip()

    def error(self, column: str, message: str) -> None:
        self.errors.append(RowError(self.file, self.value_lines.get(column, self.line), column, message))
        self.reported.add(column)

    @property
    def failed(self) -> bool:
        return bool(self.reported)


# ------------------------------------------------------------------------------------------ column types


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    raise ValueError(f"expected text, got {type(value).__name__}")


def _column(parse: Callable[[str], Any]) -> PlainValidator:
    def validate(value: Any) -> Any:
        return parse(_text(value))

    return PlainValidator(validate, json_schema_input_type=str)


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    return lambda text: parse(text) if text else None


def _required_text(max_length: int) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if not text:
            raise ValueError("empty")
        if len(text) > max_length:
            raise ValueError(f"longer than {max_length} characters")
        return text

    return parse


def _free_text(max_length: int) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if len(text) > max_length:
            raise ValueError(f"longer than {max_length:,} characters")
        return text

    return parse


def _whole_number(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise ValueError(f"not a whole number: {text!r}") from None
        if not low <= number <= high:
            raise ValueError(f"must be a whole number from {low:,} to {high:,}, got {text!r}")
        return number

    return parse


def _number(high: float, *, low: float = 0.0, low_included: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"not a number: {text!r}") from None
        above = number >= low if low_included else number > low
        if not (above and number <= high):  # also refuses nan and infinities
            bound = "at least" if low_included else "above"
            if not low_included and low == 0.0 and number <= 0:
                raise ValueError(f"must be a positive number, got {text!r}")
            raise ValueError(f"must be a number {bound} {low:g} and at most {high:g}, got {text!r}")
        return number

    return parse


def _coordinate(limit: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"not a number: {text!r}") from None
        if not -limit <= number <= limit:
            raise ValueError(f"must be between -{limit:g} and {limit:g}, got {text!r}")
        return number

    return parse


def _enum(enum_type: type[E], what: str) -> Callable[[str], E]:
    def parse(text: str) -> E:
        try:
            return enum_type(text)
        except ValueError:
            allowed = ", ".join(str(member.value) for member in enum_type)
            raise ValueError(f"unknown {what} {text!r} (expected one of {allowed})") from None

    return parse


_SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def _slug(text: str) -> str:
    if not text:
        raise ValueError("empty")
    if not _SLUG.match(text):
        raise ValueError(f"must be gpuplan's lower-case provider name (aws, lambda, ...), got {text!r}")
    return text


def _price(text: str) -> int:
    try:
        return parse_usd_price(text)
    except PriceError as exc:
        raise ValueError(str(exc)) from None


def _currency(text: str) -> str:
    try:
        return require_usd(text)
    except CurrencyError as exc:
        raise ValueError(str(exc)) from None


def _flags(text: str) -> frozenset[OfferFlag]:
    parse = _enum(OfferFlag, "flag")
    return frozenset(parse(name.strip()) for name in text.split(FLAG_SEPARATOR) if name.strip())


def _boolean(text: str) -> bool:
    if text not in ("true", "false"):
        raise ValueError(f"expected true or false, got {text!r}")
    return text == "true"


def _country(text: str) -> str:
    return check_country(text)


def _precision(text: str) -> str:
    if text not in PRECISIONS:
        raise ValueError(f"unknown precision {text!r} (expected one of {', '.join(PRECISIONS)})")
    return text


def _in_range(moment: dt.datetime, text: str) -> dt.datetime:
    try:
        utc = moment.astimezone(dt.UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise ValueError(f"must be from {EARLIEST:%Y-%m-%d} up to {LATEST:%Y-%m-%d} (UTC), got {text!r}")
    return utc


def parse_timestamp(text: str) -> dt.datetime:
    """An ISO 8601 date-time with a time zone, as aware UTC within [1970-01-01, 2200-01-01)."""
    if not text:
        raise ValueError("empty")
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 date-time: {text!r}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"a date-time needs a time zone (e.g. 2026-01-01T00:00:00Z), got {text!r}")
    return _in_range(moment, text)


def parse_moment(text: str) -> dt.datetime:
    """An ISO 8601 date-time with a time zone, or a date (midnight UTC), as aware UTC (range as above)."""
    text = text.strip()
    if len(text) == 10:
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an ISO 8601 date or date-time: {text!r}") from None
        return _in_range(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC), text)
    try:
        return parse_timestamp(text)
    except ValueError as exc:
        if str(exc).startswith("not an ISO 8601"):
            raise ValueError(f"not an ISO 8601 date or date-time: {text!r}") from None
        raise


def parse_percent_off(text: str) -> int:
    """``'12.5'`` (percent) -> 1250 basis points; at most two decimals, at least 0 and below 100."""
    stripped = text.strip().removesuffix("%").strip()
    if not stripped:
        raise ValueError("empty")
    try:
        amount = Decimal(stripped)
    except InvalidOperation:
        raise ValueError(f"not a number: {text!r}") from None
    if not amount.is_finite() or not 0 <= amount < 100:
        raise ValueError(f"must be at least 0 and below 100 (percent), got {text!r}")
    basis_points = amount * 100
    if basis_points != basis_points.to_integral_value():
        raise ValueError(f"at most two decimals, got {text!r}")
    return int(basis_points)


Text = Annotated[str, _column(_free_text(2_000))]
LongText = Annotated[str, _column(_free_text(20_000))]
Required = Annotated[str, _column(_required_text(200))]
RequiredLong = Annotated[str, _column(_required_text(20_000))]
ProviderName = Annotated[str, _column(_slug)]
RegionCode = Annotated[str, _column(_required_text(100))]
ZoneText = Annotated[str, _column(_free_text(100))]
InstanceTypeName = Annotated[str, _column(_required_text(120))]
CanonicalGpu = Annotated[GpuType, _column(_enum(GpuType, "GPU type"))]
GpuCountColumn = Annotated[int, _column(_whole_number(1, MAX_GPUS_PER_INSTANCE))]
VcpusColumn = Annotated[float | None, _column(_optional(_number(MAX_VCPUS)))]
MemoryColumn = Annotated[float | None, _column(_optional(_number(MAX_MEMORY_GIB)))]
OptionColumn = Annotated[PurchaseOption, _column(_enum(PurchaseOption, "purchase option"))]
OptionalOptionColumn = Annotated[
    PurchaseOption | None, _column(_optional(_enum(PurchaseOption, "purchase option")))
]
TermColumn = Annotated[ReservedTerm | None, _column(_optional(_enum(ReservedTerm, "term")))]
UpfrontColumn = Annotated[Upfront | None, _column(_optional(_enum(Upfront, "upfront kind")))]
PriceColumn = Annotated[int, _column(_price)]
CurrencyColumn = Annotated[str, _column(_currency)]
FlagsColumn = Annotated[frozenset[OfferFlag], _column(_flags)]
CountryColumn = Annotated[str, _column(_country)]
ContinentColumn = Annotated[Continent, _column(_enum(Continent, "continent"))]
LatColumn = Annotated[float, _column(_coordinate(90.0))]
LonColumn = Annotated[float, _column(_coordinate(180.0))]
BooleanColumn = Annotated[bool, _column(_boolean)]
TimestampColumn = Annotated[dt.datetime, _column(parse_timestamp)]
MomentColumn = Annotated[dt.datetime, _column(parse_moment)]
OptionalMomentColumn = Annotated[dt.datetime | None, _column(_optional(parse_moment))]
AvailabilityColumn = Annotated[int | None, _column(_optional(_whole_number(0, MAX_INSTANCES)))]
RttColumn = Annotated[float, _column(_number(float(MAX_LATENCY_MS)))]
PercentOffColumn = Annotated[int, _column(parse_percent_off)]


# -------------------------------------------------------------------------------------------- the models


class RowModel(BaseModel):
    """Base of the row models: immutable, no unknown columns, rules across columns in ``row_rules``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    all_columns_required: ClassVar[bool] = False
    """True for the catalog's files: every column must be in the header (empty cells where unknown)."""

    @classmethod
    def row_rules(cls, values: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        """Problems across columns as (column, message), given the values (by field name) that parsed."""
        return iter(())

    @model_validator(mode="after")
    def _rules_hold(self) -> Self:
        problems = list(type(self).row_rules(self.__dict__))
        if problems:
            raise ValueError("\n".join(f"{column}: {message}" for column, message in problems))
        return self


def columns(model: type[RowModel]) -> tuple[str, ...]:
    """The model's column names, in file order."""
    return tuple(info.alias or name for name, info in model.model_fields.items())


def required_columns(model: type[RowModel]) -> tuple[str, ...]:
    """The columns a file's header must have."""
    if model.all_columns_required:
        return columns(model)
    return tuple(info.alias or name for name, info in model.model_fields.items() if info.is_required())


def describe_columns(model: type[RowModel]) -> list[tuple[str, bool, str]]:
    """(column, required, description) per column: the format as data, for documentation and tests."""
    required = set(required_columns(model))
    return [
        (info.alias or name, (info.alias or name) in required, info.description or "")
        for name, info in model.model_fields.items()
    ]


@cache
def _field_adapters(model: type[RowModel]) -> dict[str, tuple[str, TypeAdapter[Any]]]:
    """Column -> (field name, validator of that column alone)."""
    return {
        info.alias or name: (name, TypeAdapter(info.rebuild_annotation()))
        for name, info in model.model_fields.items()
    }


def check_record(model: type[R], record: RawRecord) -> R | None:
    """The record as a ``model``, or None after reporting every problem of it on ``record``."""
    raw = {column: value for column, value in record.values.items() if column not in record.reported}
    try:
        item = model.model_validate(raw)
    except ValidationError as exc:
        failed: set[str] = set()
        for error in exc.errors(include_url=False):
            if not error["loc"]:
                continue  # the rules across columns: reported below, from the columns that parsed
            column = str(error["loc"][0])
            if column in failed or column in record.reported:
                continue
            failed.add(column)
            if error["type"] == "missing":
                record.error(column, "missing column")
            elif error["type"] == "extra_forbidden":
                record.error(column, f"unknown column (expected {', '.join(columns(model))})")
            else:
                record.error(column, error["msg"].removeprefix("Value error, "))
        parsed: dict[str, Any] = {}
        for column, (name, adapter) in _field_adapters(model).items():
            if column in raw and column not in failed:
                parsed[name] = adapter.validate_python(raw[column])
            elif column not in raw and not model.model_fields[name].is_required():
                parsed[name] = model.model_fields[name].get_default(call_default_factory=True)
        for column, message in model.row_rules(parsed):
            if column not in record.reported:
                record.error(column, message)
        return None
    return None if record.failed else item


# ---------------------------------------------------------------------------------------------- offers


class OfferColumns(RowModel):
    """The columns that describe an offer: shared by the catalog, price sheets and offers files."""

    provider: ProviderName = Field(description="gpuplan's provider name, a lower-case slug (aws, lambda)")
    region: RegionCode = Field(description="the provider's region code (us-east-1)")
    zone: ZoneText = Field("", description="availability zone, empty for the region as a whole")
    instance_type: InstanceTypeName = Field(description="the provider's machine name (p5.48xlarge)")
    gpu_type: CanonicalGpu = Field(description="canonical GPU type: H100, H100-PCIE, H100-NVL, H200, MI300X")
    gpus_per_instance: GpuCountColumn = Field(
        description=f"GPUs in one instance, a whole number from 1 to {MAX_GPUS_PER_INSTANCE}"
    )
    vcpus: VcpusColumn = Field(None, description=f"vCPUs of the instance, above 0, at most {MAX_VCPUS}")
    memory_gib: MemoryColumn = Field(
        None, description=f"host memory of the instance in GiB, above 0, at most {MAX_MEMORY_GIB:,}"
    )
    purchase_option: OptionColumn = Field(
        description="on_demand, spot, reserved, capacity_block or flex_start"
    )
    term: TermColumn = Field(None, description="reserved only: 1y or 3y")
    upfront: UpfrontColumn = Field(
        None, description="reserved only: no_upfront, partial_upfront or all_upfront"
    )
    price_micro_usd_per_hour: PriceColumn = Field(
        alias="price_usd_per_hour",
        description="USD per instance-hour, decimal text above 0 and at most 10,000; read as integer "
        "micro-USD without a float (half-even)",
    )
    currency: CurrencyColumn = Field("USD", description="USD; anything else is refused, never converted")

    @classmethod
    def row_rules(cls, values: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        option = values.get("purchase_option")
        if option is None:
            return
        if option is PurchaseOption.RESERVED:
            if "term" in values and values["term"] is None:
                yield "term", "a reserved offer needs a term (1y or 3y)"
        elif values.get("term") is not None or values.get("upfront") is not None:
            column = "term" if values.get("term") is not None else "upfront"
            yield column, f"only reserved offers have a term, not {option.value}"

    def canonical_gpu(self) -> GpuType:
        """The offer's canonical GPU type."""
        return GpuType(self.gpu_type)

    def to_offer(
        self, *, flags: frozenset[OfferFlag] = frozenset(), availability: int | None = None
    ) -> Offer:
        return Offer(
            provider=self.provider,
            region=self.region,
            zone=self.zone,
            instance_type=self.instance_type,
            gpu_type=self.canonical_gpu(),
            gpus_per_instance=self.gpus_per_instance,
            purchase_option=self.purchase_option,
            term=self.term,
            upfront=self.upfront,
            price_micro_usd_per_hour=self.price_micro_usd_per_hour,
            availability=availability,
            flags=flags,
        )

    def to_instance(self) -> InstanceType:
        return InstanceType(
            provider=self.provider,
            name=self.instance_type,
            gpu_type=self.canonical_gpu(),
            gpu_count=self.gpus_per_instance,
            vcpus=self.vcpus,
            memory_gib=self.memory_gib,
        )


class CatalogOfferRecord(OfferColumns):
    """A row of the catalog's offers.csv (docs/catalog.md)."""

    all_columns_required = True

    zone: ZoneText = Field(description=OfferColumns.model_fields["zone"].description)
    vcpus: VcpusColumn = Field(description=OfferColumns.model_fields["vcpus"].description)
    memory_gib: MemoryColumn = Field(description=OfferColumns.model_fields["memory_gib"].description)
    term: TermColumn = Field(description=OfferColumns.model_fields["term"].description)
    upfront: UpfrontColumn = Field(description=OfferColumns.model_fields["upfront"].description)
    currency: CurrencyColumn = Field(description=OfferColumns.model_fields["currency"].description)
    flags: FlagsColumn = Field(
        description="';'-separated solver.domain.OfferFlag values (spot_not_discounted, ...), may be empty"
    )
    source: Required = Field(description="where the price was read; a source of sources.csv, which dates it")
    source_commit: Text = Field(description="git commit of the source file, may be empty")
    notes: LongText = Field(description="gpuplan's notes, then the source row's own caveats")


class OfferFileRecord(OfferColumns):
    """A row of a scenario's offers file: the catalog's columns (docs/formats.md, "Offers file")."""

    flags: FlagsColumn = Field(frozenset(), description=CatalogOfferRecord.model_fields["flags"].description)
    availability: AvailabilityColumn = Field(
        None, description=f"instances one can get, a whole number from 0 to {MAX_INSTANCES:,}; empty: unknown"
    )
    source: Text = Field("", description="ignored")
    source_commit: Text = Field("", description="ignored")
    notes: LongText = Field("", description="ignored")

    def offer(self) -> Offer:
        return self.to_offer(flags=self.flags, availability=self.availability)


class PriceSheetRecord(OfferColumns):
    """A row of a price sheet (docs/collectors.md, "Price sheets"); the GPU may be any known spelling."""

    gpu_type: Required = Field(  # type: ignore[assignment]
        description="any spelling pricing.normalize knows (H100, H100-SXM, H100 PCIe, MI300X); "
        "instance-type rules apply (Azure NC H100 v5 is H100 NVL)"
    )
    currency: CurrencyColumn = Field(description=OfferColumns.model_fields["currency"].description)
    valid_from: MomentColumn = Field(
        description="ISO 8601 date (midnight UTC) or date-time with a time zone, from 1970 up to 2200: "
        "the observation's observed_at"
    )
    valid_to: OptionalMomentColumn = Field(
        None, description="end of validity (exclusive), same format, after valid_from"
    )
    notes: Text = Field("", description="free text")

    @classmethod
    def row_rules(cls, values: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        yield from super().row_rules(values)
        label = values.get("gpu_type")
        if label is not None:
            try:
                _canonical_gpu(values.get("provider"), label, values.get("instance_type"))
            except UnknownGpuTypeError as exc:
                yield "gpu_type", str(exc)
        start, end = values.get("valid_from"), values.get("valid_to")
        if start is not None and end is not None and end <= start:
            yield "valid_to", f"must be after valid_from ({start.isoformat()})"

    def canonical_gpu(self) -> GpuType:
        return _canonical_gpu(self.provider, self.gpu_type, self.instance_type)


def _canonical_gpu(provider: str | None, label: str, instance_type: str | None) -> GpuType:
    if provider is None or instance_type is None:
        return gpu_type_from_alias(label)
    return canonical_gpu_type(provider, label, instance_type)


class DiscountRecord(RowModel):
    """A rule of a discount file (docs/collectors.md, "Discount overlay")."""

    provider: ProviderName = Field(description="gpuplan's provider name; the provider must be known")
    family: Annotated[str | None, _column(_optional(_required_text(120)))] = Field(
        None, description="a prefix of the instance type (p5), or a glob on it (p5.*); empty: every family"
    )
    instance_type: Annotated[str | None, _column(_optional(_required_text(120)))] = Field(
        None, description="one instance type (SKU); empty: not one SKU"
    )
    purchase_option: Annotated[
        PurchaseOption | None, _column(_optional(_enum(PurchaseOption, "purchase option")))
    ] = Field(None, description="only this purchase option; empty: every option")
    percent_off_bp: PercentOffColumn = Field(
        alias="percent_off",
        description="percent off the list price, at least 0 and below 100, at most two decimals "
        "('12.5', '7.25%'); kept as integer basis points",
    )
    note: Text = Field("", description="free text")

    @classmethod
    def row_rules(cls, values: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        if values.get("family") is not None and values.get("instance_type") is not None:
            yield "family", "give a family or an instance_type, not both"


# --------------------------------------------------------------------------------------- catalog files


class ProviderRecord(RowModel):
    """A row of the catalog's providers.csv."""

    all_columns_required = True

    name: ProviderName = Field(description="the provider's id, a lower-case slug used in every other file")
    kind: Annotated[ProviderKind, _column(_enum(ProviderKind, "provider kind"))] = Field(
        description="hyperscaler, neocloud or marketplace"
    )
    display_name: Required = Field(description="the provider's name for people")
    pricing_api: Text = Field(description="the public price source a collector reads; empty when none")


class SourceRecord(RowModel):
    """A row of the catalog's sources.csv: when the prices of one source were observed."""

    all_columns_required = True

    source: Required = Field(description="exactly as in offers.csv")
    observed_at: TimestampColumn = Field(
        description="ISO 8601 date-time with a time zone, from 1970 up to 2200; read as aware UTC"
    )
    basis: RequiredLong = Field(description="why that date")


class _RegionColumns(RowModel):
    all_columns_required = True

    provider: ProviderName = Field(description="a name of providers.csv")
    region: RegionCode = Field(description="the provider's region code")
    display_name: Text = Field(description="the region's name for people")
    city: Text = Field(description="the city of the location")
    country_code: CountryColumn = Field(description="ISO 3166-1 alpha-2 country code, upper case")
    continent: ContinentColumn = Field(description="AF, AN, AS, EU, NA, OC or SA")
    lat: LatColumn = Field(description="latitude in degrees, -90 to 90")
    lon: LonColumn = Field(description="longitude in degrees, -180 to 180")


class CloudRegionRecord(_RegionColumns):
    """A row of cloud_regions_aws.csv and cloud_regions_gcp_azure.odbl.csv (third-party locations)."""

    source: RequiredLong = Field(description="where the location comes from")
    eu_member: BooleanColumn = Field(description="true or false; must agree with solver.jurisdictions")
    eea_member: BooleanColumn = Field(description="true or false; must agree with solver.jurisdictions")

    @classmethod
    def row_rules(cls, values: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        country = values.get("country_code")
        if country is None:
            return
        for column, members in (("eu_member", EU_MEMBERS), ("eea_member", EEA_MEMBERS)):
            stated = values.get(column)
            if stated is not None and stated != (country in members):
                yield column, f"says {str(stated).lower()} for {country}, solver.jurisdictions disagrees"


class ProviderRegionRecord(_RegionColumns):
    """A row of provider_regions.csv (gpuplan's own locations)."""

    precision: Annotated[str, _column(_precision)] = Field(
        description="how precisely the location is known: metro, state or country"
    )
    basis: RequiredLong = Field(description="where the location comes from")


class RttRecord(RowModel):
    """A row of region_rtt_ms.csv: a measured round trip between two regions."""

    all_columns_required = True

    src_provider: Required = Field(description="provider of the source region")
    src_region: Required = Field(description="code of the source region")
    dst_provider: Required = Field(description="provider of the destination region")
    dst_region: Required = Field(description="code of the destination region")
    rtt_ms: RttColumn = Field(description=f"round trip in milliseconds, above 0, at most {MAX_LATENCY_MS:,}")
    source: Required = Field(description="where the measurement comes from")


# ---------------------------------------------------------------------------------------- reading CSV


@dataclass
class CsvFile:
    """The records of one CSV file, after its header was checked against a row model."""

    file: str
    records: list[RawRecord]
    header_ok: bool
    """False when the file could not be read or its header is unusable (no records then)."""


def read_csv_records(
    path: Path,
    model: type[RowModel],
    *,
    errors: list[RowError],
    label: str | None = None,
    comments: bool = False,
) -> CsvFile:
    """Read a CSV file through ``pricing.files`` and check its header against ``model``.

    Every problem goes to ``errors`` (named ``label``, default the file name): an unreadable file, a
    missing or unknown column, a duplicate column name, a record with the wrong number of fields, a record
    the csv module refuses (reading stops there). Records of a file whose header lacks a required column are
    still returned, that column reported once on the header, so every other problem is found too.
    """
    name = label or path.name
    try:
        text = read_text(path)
    except UnreadableFileError as exc:
        errors.append(RowError(name, exc.line, "", exc.message))
        return CsvFile(name, [], header_ok=False)
    return csv_text_records(text, model, name=name, errors=errors, comments=comments)


def csv_text_records(
    text: str, model: type[RowModel], *, name: str, errors: list[RowError], comments: bool = False
) -> CsvFile:
    """``read_csv_records`` on text already read."""
    document = csv_records(text, comments=comments)
    if not document.header:
        if document.problem is not None:
            errors.append(RowError(name, document.problem.line, "", document.problem.message))
        else:
            errors.append(RowError(name, 1, "", "empty file (no header)"))
        return CsvFile(name, [], header_ok=False)
    known = columns(model)
    line = document.header_line
    missing = [column for column in required_columns(model) if column not in document.header]
    for column in missing:
        errors.append(RowError(name, line, column, "missing column"))
    for column in document.header:
        if column not in known:
            errors.append(RowError(name, line, column, f"unknown column (expected {', '.join(known)})"))
    if len(set(document.header)) != len(document.header):
        errors.append(RowError(name, line, "", "duplicate column names"))
        return CsvFile(name, [], header_ok=False)
    records = []
    for item in document.records:
        record = RawRecord(name, item.line, {}, errors, reported=set(missing))
        if item.field_count != len(document.header):
            record.error("", f"expected {len(document.header)} fields, found {item.field_count}")
            continue
        record.values = {column: value for column, value in item.values.items() if column in known}
        records.append(record)
    if document.problem is not None:
        errors.append(RowError(name, document.problem.line, "", document.problem.message))
    return CsvFile(name, records, header_ok=not missing)
