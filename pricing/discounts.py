"""The discount overlay: negotiated percent-off-list rules that the planner applies on top of list prices.

A rule names a provider and, optionally, an instance family (a prefix or a glob on the instance type) or
one instance type (SKU), and optionally a purchase option; it takes ``percent_off`` off the list price.
For each offer the most specific matching rule wins (none: the list price stands):

1. an instance-type rule beats a family rule, which beats a provider-wide rule;
2. at the same level, a rule naming the offer's purchase option beats one that does not;
3. between family rules, the one with more literal (non-wildcard) characters wins (``p5e`` beats ``p5``);
4. then the rule listed first.

Rules are never added together. Percentages have at most two decimals and are kept as integer basis points
(1 bp = 0.01 %); a discounted price is ``price x (10000 - bp) / 10000`` rounded half-even to a whole
micro-USD, and never below 1 micro-USD. The file format (YAML or CSV) is in docs/collectors.md.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from pricing.rows import DiscountRecord, RowError, check_record, columns, parse_percent_off, required_columns
from pricing.rows import sorted_errors as _sorted
from pricing.sheetfile import read_sheet
from solver.domain import Offer, PurchaseOption
from solver.errors import InputError

__all__ = [
    "BASIS_POINTS",
    "DiscountFileError",
    "DiscountOverlay",
    "DiscountRule",
    "apply_discounts",
    "discounted_price",
    "parse_percent_off",
    "read_discounts",
]

BASIS_POINTS = 10_000
"""100 % in basis points."""

COLUMNS = columns(DiscountRecord)
REQUIRED_COLUMNS = required_columns(DiscountRecord)
LIST_KEY = "discounts"
_WILDCARDS = frozenset("*?[")


@dataclass(frozen=True)
class DiscountRule:
    provider: str
    percent_off_bp: int
    """Basis points off the list price: 1250 is 12.5 % off. 0 is allowed (an explicit "no discount" that
    overrides a less specific rule)."""
    family: str | None = None
    """A prefix of the instance type (``p5`` matches ``p5.48xlarge`` and ``p5e.48xlarge``) or, with ``*``,
    ``?`` or ``[...]``, a glob matched against the whole instance type (``p5.*``)."""
    instance_type: str | None = None
    purchase_option: PurchaseOption | None = None
    note: str = ""
    line: int = field(default=0, compare=False)
    """The line of the file the rule was read from (0 when it was not read from a file)."""

    def __post_init__(self) -> None:
        if not 0 <= self.percent_off_bp < BASIS_POINTS:
            raise ValueError(
                f"percent_off: must be at least 0 and below 100, got {self.percent_off_bp / 100}"
            )
        if self.family is not None and self.instance_type is not None:
            raise ValueError("a rule names a family or an instance type, not both")
        if self.family == "" or self.instance_type == "":
            raise ValueError("family and instance_type must not be empty when given")

    @property
    def selector(self) -> tuple[str, str | None, str | None, PurchaseOption | None]:
        return (self.provider, self.family, self.instance_type, self.purchase_option)

    @property
    def percent_off(self) -> Decimal:
        return Decimal(self.percent_off_bp) / 100

    @property
    def scope(self) -> str:
        """Human-readable: ``aws family p5* (on_demand)``."""
        what = self.provider
        if self.instance_type is not None:
            what += f" instance type {self.instance_type}"
        elif self.family is not None:
            what += f" family {self.family}"
        if self.purchase_option is not None:
            what += f" ({self.purchase_option.value})"
        return what

    def matches(self, offer: Offer) -> bool:
        if offer.provider != self.provider:
            return False
        if self.purchase_option is not None and offer.purchase_option != self.purchase_option:
            return False
        if self.instance_type is not None:
            return offer.instance_type == self.instance_type
        if self.family is not None:
            return _family_matches(self.family, offer.instance_type)
        return True

    def specificity(self) -> tuple[int, int, int]:
        level = 2 if self.instance_type is not None else 1 if self.family is not None else 0
        literal = sum(1 for char in self.family if char not in _WILDCARDS) if self.family else 0
        return (level, int(self.purchase_option is not None), literal)


def _family_matches(family: str, instance_type: str) -> bool:
    if _WILDCARDS & set(family):
        return fnmatch.fnmatchcase(instance_type, family)
    return instance_type.startswith(family)


def discounted_price(price_micro_usd: int, percent_off_bp: int) -> int:
    """``price x (10000 - bp) / 10000`` in whole micro-USD, rounded half-even, at least 1."""
    quotient, remainder = divmod(price_micro_usd * (BASIS_POINTS - percent_off_bp), BASIS_POINTS)
    if remainder * 2 > BASIS_POINTS or (remainder * 2 == BASIS_POINTS and quotient % 2 == 1):
        quotient += 1
    return max(quotient, 1)


@dataclass(frozen=True)
class DiscountOverlay:
    rules: tuple[DiscountRule, ...] = ()
    source: str = ""

    def __post_init__(self) -> None:
        seen: set[tuple[str, str | None, str | None, PurchaseOption | None]] = set()
        for rule in self.rules:
            if rule.selector in seen:
                raise ValueError(f"two discount rules for {rule.scope}")
            seen.add(rule.selector)

    def rule_for(self, offer: Offer) -> DiscountRule | None:
        """The most specific rule matching the offer; the first listed among equals."""
        best: DiscountRule | None = None
        for rule in self.rules:
            if rule.matches(offer) and (best is None or rule.specificity() > best.specificity()):
                best = rule
        return best

    def apply(self, offer: Offer) -> Offer:
        """The offer at its discounted price (the same object when no rule matches)."""
        rule = self.rule_for(offer)
        if rule is None:
            return offer
        price = discounted_price(offer.price_micro_usd_per_hour, rule.percent_off_bp)
        return offer.model_copy(update={"price_micro_usd_per_hour": price})

    def __bool__(self) -> bool:
        return bool(self.rules)


def apply_discounts(offers: Iterable[Offer], overlay: DiscountOverlay) -> list[Offer]:
    """New offers with the overlay's discounts applied; the input is not changed."""
    return [overlay.apply(offer) for offer in offers]


# ------------------------------------------------------------------------------------------------- file


class DiscountFileError(InputError):
    """The discount file has problems; ``errors`` lists every one. Nothing of it is loaded."""

    def __init__(self, file: str, errors: Sequence[RowError]) -> None:
        self.file = file
        self.errors = list(errors)
        listed = "\n".join(f"  {error}" for error in self.errors[:20])
        more = f"\n  ... and {len(self.errors) - 20} more" if len(self.errors) > 20 else ""
        count = f"{len(self.errors)} problem{'s' if len(self.errors) != 1 else ''}"
        super().__init__(f"discount file {file}: {count}; nothing was loaded\n{listed}{more}")


def read_discounts(path: Path | str, *, providers: Iterable[str] | None = None) -> DiscountOverlay:
    """Read a discount file (YAML or CSV); raise DiscountFileError listing every problem.

    With ``providers`` (the known provider names), a rule for any other provider is a problem too.
    """
    path = Path(path)
    errors: list[RowError] = []
    document = read_sheet(path, DiscountRecord, list_key=LIST_KEY, errors=errors)
    known = None if providers is None else sorted(set(providers))
    rules: list[DiscountRule] = []
    first_line: dict[tuple[str, str | None, str | None, PurchaseOption | None], int] = {}
    for record in document.records:
        row = check_record(DiscountRecord, record)
        if row is not None and known is not None and row.provider not in known:
            shown = ", ".join(known[:25]) + (", ..." if len(known) > 25 else "")
            record.error("provider", f"unknown provider {row.provider!r} (known: {shown or 'none'})")
        if row is None or record.failed:
            continue
        rule = DiscountRule(
            provider=row.provider,
            family=row.family,
            instance_type=row.instance_type,
            purchase_option=row.purchase_option,
            percent_off_bp=row.percent_off_bp,
            note=row.note,
            line=record.line,
        )
        if rule.selector in first_line:
            record.error(
                "provider", f"a second rule for {rule.scope} (first on line {first_line[rule.selector]})"
            )
            continue
        first_line[rule.selector] = record.line
        rules.append(rule)
    if errors:
        raise DiscountFileError(document.file, _sorted(errors))
    return DiscountOverlay(rules=tuple(rules), source=document.file)
