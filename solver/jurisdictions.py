"""Jurisdiction tags derived from a country: the country itself, plus the groups it belongs to.

Residency rules name tags (``EU``, ``EEA``) or countries (``DE``); a region satisfies a rule when its
tags meet the rule's. Switzerland and the United Kingdom are in neither group: their adequacy decisions
are a legal nuance a residency rule should state explicitly (``{"EU", "CH", "GB"}``).
"""

from __future__ import annotations

# The 27 member states of the European Union.
EU_MEMBERS: frozenset[str] = frozenset(
    "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split()  # noqa: SIM905
)
EEA_MEMBERS: frozenset[str] = EU_MEMBERS | {"IS", "LI", "NO"}


def jurisdictions_for(country: str) -> frozenset[str]:
    """Tags for a country code: ``DE`` -> {DE, EU, EEA}; ``NO`` -> {NO, EEA}; ``US`` -> {US}."""
    code = country.strip().upper()
    if len(code) != 2 or not code.isalpha():
        raise ValueError(f"country must be an ISO 3166-1 alpha-2 code, got {country!r}")
    tags = {code}
    if code in EU_MEMBERS:
        tags.add("EU")
    if code in EEA_MEMBERS:
        tags.add("EEA")
    return frozenset(tags)
