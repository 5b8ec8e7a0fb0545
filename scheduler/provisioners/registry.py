"""The registry of provisioner adapters: by name, and by the (provider, purchase option) each covers.

Adapters are registered as a coverage function (cheap, imports no SDK) and a factory (imports the SDK and
builds the adapter). A name registered twice is refused, and so are two adapters that cover the same
(provider, purchase option): the engine must never have to choose. A factory whose SDK cannot be imported
raises ``SdkMissingError`` (one line) for that provider only.

``default_registry()`` registers the real clouds: ``aws``, ``gcp``, ``azure`` and ``skypilot`` (the
neoclouds). The simulated cloud is not one of them; a registry for it is built by whoever uses it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from scheduler.provisioners.base import (
    Coverage,
    Operation,
    Provisioner,
    SdkMissingError,
)
from scheduler.provisioners.coverage import aws_coverage, azure_coverage, gcp_coverage, skypilot_coverage
from scheduler.settings import Settings, get_settings
from solver.domain import Offer, PurchaseOption

ProvisionerFactory = Callable[[], Provisioner]
CoverageFunction = Callable[[], Coverage]


class DuplicateProvisionerError(ValueError):
    """A name registered twice, or two adapters covering the same provider and purchase option."""


@dataclass(frozen=True)
class _Entry:
    name: str
    coverage: CoverageFunction
    factory: ProvisionerFactory


@dataclass(frozen=True)
class OfferRef:
    """The part of an offer the registry needs: its provider and purchase option."""

    provider: str
    purchase_option: PurchaseOption

    @classmethod
    def parse(cls, offer: Offer | str) -> OfferRef:
        """From an ``Offer`` or an offer key (``provider/region/zone/type/option[:term[:upfront]]``)."""
        if isinstance(offer, Offer):
            return cls(offer.provider, offer.purchase_option)
        parts = offer.split("/")
        if len(parts) < 5 or not parts[0]:
            raise ValueError(f"offer key {offer!r}: expected provider/region/zone/instance_type/option")
        option = parts[-1].split(":", 1)[0]
        try:
            return cls(parts[0], PurchaseOption(option))
        except ValueError:
            raise ValueError(f"offer key {offer!r}: unknown purchase option {option!r}") from None


class ProvisionerRegistry:
    """Adapters by name and by coverage. Adapters are built once, on first use, and reused."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._coverage: dict[str, Coverage] | None = None
        self._adapters: dict[str, Provisioner] = {}
        self._lock = threading.Lock()

    def register(self, name: str, factory: ProvisionerFactory, coverage: CoverageFunction) -> None:
        with self._lock:
            if name in self._entries:
                raise DuplicateProvisionerError(f"a provisioner named {name!r} is already registered")
            self._entries[name] = _Entry(name, coverage, factory)
            self._coverage = None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    # ------------------------------------------------------------------------------------ coverage

    def coverages(self) -> dict[str, Coverage]:
        """Every adapter's coverage, computed once; refuses two adapters covering the same pair."""
        with self._lock:
            if self._coverage is None:
                coverages = {name: entry.coverage() for name, entry in sorted(self._entries.items())}
                owner: dict[tuple[str, PurchaseOption], str] = {}
                for name, coverage in coverages.items():
                    for pair in sorted(coverage.covered):
                        if pair in owner:
                            raise DuplicateProvisionerError(
                                f"{pair[0]} {pair[1].value} is covered by both {owner[pair]!r} and {name!r}"
                            )
                        owner[pair] = name
                self._coverage = coverages
            return self._coverage

    def adapter_for(self, provider: str, purchase_option: PurchaseOption | str) -> str | None:
        """The name of the adapter that launches this provider's offers of this purchase option."""
        option = PurchaseOption(purchase_option)
        for name, coverage in self.coverages().items():
            if coverage.covers(provider, option):
                return name
        return None

    def why_not(self, offer: Offer | str) -> str | None:
        """None when some adapter can apply the offer, else the reason none can."""
        ref = OfferRef.parse(offer)
        if self.adapter_for(ref.provider, ref.purchase_option) is not None:
            return None
        reasons = [
            reason
            for coverage in self.coverages().values()
            if ref.provider in coverage.providers
            or any(entry.provider == ref.provider for entry in coverage.not_covered)
            if (reason := coverage.reason(ref.provider, ref.purchase_option)) is not None
        ]
        if not reasons:
            return f"no provisioner covers {ref.provider}"
        return "; ".join(dict.fromkeys(reasons))

    def can_apply(self, offer: Offer | str) -> bool:
        ref = OfferRef.parse(offer)
        return self.adapter_for(ref.provider, ref.purchase_option) is not None

    def applicable(self, offers: Iterable[Offer]) -> list[Offer]:
        """The offers some adapter can apply, in their order: the planner's "plan only on applicable
        offers" policy filters its offers with this."""
        return [offer for offer in offers if self.can_apply(offer)]

    # ------------------------------------------------------------------------------------ adapters

    def get(self, name: str) -> Provisioner:
        """The adapter named ``name``, built on first use (which imports its SDK)."""
        with self._lock:
            if name in self._adapters:
                return self._adapters[name]
            try:
                entry = self._entries[name]
            except KeyError:
                known = ", ".join(sorted(self._entries)) or "none"
                raise KeyError(f"no provisioner named {name!r} (known: {known})") from None
            adapter = entry.factory()
            self._adapters[name] = adapter
            return adapter

    def for_offer(self, provider: str, purchase_option: PurchaseOption | str) -> Provisioner:
        """The adapter covering (provider, option); ``KeyError`` with the reason when none does."""
        name = self.adapter_for(provider, purchase_option)
        if name is None:
            option = PurchaseOption(purchase_option)
            raise KeyError(self.why_not(f"{provider}/-/-/-/{option.value}"))
        return self.get(name)


# ------------------------------------------------------------------------------------------- built-ins


def _sdk_missing(provider: str, exc: ImportError) -> SdkMissingError:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return SdkMissingError(provider, Operation.LAUNCH, f"cannot import the adapter's SDK ({reason})")


def aws_provisioner(settings: Settings | None = None) -> Provisioner:
    try:
        from scheduler.provisioners.aws import AwsProvisioner  # noqa: PLC0415 - lazy: imports boto3
    except ImportError as exc:
        raise _sdk_missing("aws", exc) from exc
    return AwsProvisioner(settings or get_settings())


def gcp_provisioner(settings: Settings | None = None) -> Provisioner:
    try:
        from scheduler.provisioners.gcp import GcpProvisioner  # noqa: PLC0415 - lazy: imports google-cloud
    except ImportError as exc:
        raise _sdk_missing("gcp", exc) from exc
    return GcpProvisioner(settings or get_settings())


def azure_provisioner(settings: Settings | None = None) -> Provisioner:
    try:
        from scheduler.provisioners.azure import AzureProvisioner  # noqa: PLC0415 - lazy: imports azure SDKs
    except ImportError as exc:
        raise _sdk_missing("azure", exc) from exc
    return AzureProvisioner(settings or get_settings())


def skypilot_provisioner(settings: Settings | None = None) -> Provisioner:
    # The module imports SkyPilot itself only when a call needs it (and says "install gpuplan[skypilot]").
    from scheduler.provisioners.skypilot import SkyPilotProvisioner  # noqa: PLC0415

    return SkyPilotProvisioner(settings or get_settings())


def default_registry(settings: Settings | None = None) -> ProvisionerRegistry:
    """The real clouds' adapters: aws, gcp, azure and skypilot (the neoclouds)."""
    registry = ProvisionerRegistry()
    registry.register("aws", functools.partial(aws_provisioner, settings), aws_coverage)
    registry.register("gcp", functools.partial(gcp_provisioner, settings), gcp_coverage)
    registry.register("azure", functools.partial(azure_provisioner, settings), azure_coverage)
    registry.register("skypilot", functools.partial(skypilot_provisioner, settings), skypilot_coverage)
    return registry
