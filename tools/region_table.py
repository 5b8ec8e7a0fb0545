"""gpuplan's own location table for the regions the hyperscaler region files do not cover.

Maintainer data for ``tools.catalog_build``, which writes it to ``pricing/catalog/provider_regions.csv``;
nothing reads this module at run time. Coordinates are metro-level approximations (a city centre), never a
datacenter address. ``precision`` says how much of the location is actually known:

* ``metro``: the city is known (from the region name or the provider's own region description);
* ``state``: only a US state is known (RunPod ``US-TX-3``, Lambda ``Utah, USA``); coordinates are the
  state's largest datacenter metro;
* ``country``: only a country is known; coordinates are a representative major datacenter city of that
  country (see ``COUNTRY_POINTS``). Offers in such regions carry the ``location_approximate`` flag.
"""

from __future__ import annotations

from dataclasses import dataclass

from solver.domain import Continent


@dataclass(frozen=True)
class Place:
    city: str
    country: str
    lat: float
    lon: float


PLACES: dict[str, Place] = {
    place.city: place
    for place in (
        # United States
        Place("Ashburn", "US", 39.0438, -77.4874),
        Place("Atlanta", "US", 33.7490, -84.3880),
        Place("Austin", "US", 30.2672, -97.7431),
        Place("Baltimore", "US", 39.2904, -76.6122),
        Place("Charlotte", "US", 35.2271, -80.8431),
        Place("Chicago", "US", 41.8781, -87.6298),
        Place("Dallas", "US", 32.7767, -96.7970),
        Place("Des Moines", "US", 41.5868, -93.6250),
        Place("Detroit", "US", 42.3314, -83.0458),
        Place("Hillsboro", "US", 45.5229, -122.9898),
        Place("Kansas City, KS", "US", 39.1142, -94.6275),
        Place("Kansas City, MO", "US", 39.0997, -94.5786),
        Place("Miami", "US", 25.7617, -80.1918),
        Place("New York", "US", 40.7128, -74.0060),
        Place("Omaha", "US", 41.2565, -95.9345),
        Place("Philadelphia", "US", 39.9526, -75.1652),
        Place("Phoenix", "US", 33.4484, -112.0740),
        Place("Salt Lake City", "US", 40.7608, -111.8910),
        Place("Santa Clara", "US", 37.3541, -121.9552),
        Place("Seattle", "US", 47.6062, -122.3321),
        Place("Washington, D.C.", "US", 38.9072, -77.0369),
        Place("Wilmington", "US", 39.7391, -75.5398),
        # Canada
        Place("Montreal", "CA", 45.5019, -73.5674),
        # Europe
        Place("Amsterdam", "NL", 52.3676, 4.9041),
        Place("Bucharest", "RO", 44.4268, 26.1025),
        Place("Copenhagen", "DK", 55.6761, 12.5683),
        Place("Frankfurt", "DE", 50.1109, 8.6821),
        Place("Helsinki", "FI", 60.1699, 24.9384),
        Place("Kristiansand", "NO", 58.1599, 8.0182),
        Place("Lisbon", "PT", 38.7223, -9.1393),
        Place("Madrid", "ES", 40.4168, -3.7038),
        Place("Mantsala", "FI", 60.6333, 25.3167),
        Place("Milan", "IT", 45.4642, 9.1900),
        Place("Moscow", "RU", 55.7558, 37.6173),
        Place("Oslo", "NO", 59.9139, 10.7522),
        Place("Paris", "FR", 48.8566, 2.3522),
        Place("Prague", "CZ", 50.0755, 14.4378),
        Place("Reykjavik", "IS", 64.1466, -21.9426),
        Place("Sofia", "BG", 42.6977, 23.3219),
        Place("Stockholm", "SE", 59.3293, 18.0686),
        Place("Warsaw", "PL", 52.2297, 21.0122),
        # Asia and Oceania
        Place("Ho Chi Minh City", "VN", 10.8231, 106.6297),
        Place("Mumbai", "IN", 19.0760, 72.8777),
        Place("Osaka", "JP", 34.6937, 135.5023),
        Place("Seoul", "KR", 37.5665, 126.9780),
        Place("Singapore", "SG", 1.3521, 103.8198),
        Place("Sydney", "AU", -33.8688, 151.2093),
        Place("Tel Aviv", "IL", 32.0853, 34.7818),
        Place("Tokyo", "JP", 35.6762, 139.6503),
    )
}

COUNTRY_POINTS: dict[str, str] = {
    # US: Dallas, a major datacenter market near the middle of the country, which keeps the worst-case
    # distance error (to either coast) near 2,000 km rather than the 3,700 km of a coastal choice.
    "US": "Dallas",
    "CA": "Montreal",
    "AU": "Sydney",
    "BG": "Sofia",
    "CZ": "Prague",
    "DE": "Frankfurt",
    "DK": "Copenhagen",
    "FI": "Helsinki",
    "FR": "Paris",
    "IL": "Tel Aviv",
    "IN": "Mumbai",
    "IS": "Reykjavik",
    "IT": "Milan",
    "JP": "Tokyo",
    "KR": "Seoul",
    "NL": "Amsterdam",
    "NO": "Oslo",
    "PT": "Lisbon",
    "RO": "Bucharest",
    "RU": "Moscow",
    "SE": "Stockholm",
    "VN": "Ho Chi Minh City",
}
"""Representative major datacenter city of each country, for regions known only to country level."""

STATE_POINTS: dict[str, str] = {
    "AZ": "Phoenix",
    "CA": "Santa Clara",
    "DE": "Wilmington",
    "FL": "Miami",
    "GA": "Atlanta",
    "IL": "Chicago",
    "KS": "Kansas City, KS",
    "MD": "Baltimore",
    "MI": "Detroit",
    "MO": "Kansas City, MO",
    "NC": "Charlotte",
    "NE": "Omaha",
    "OR": "Hillsboro",
    "PA": "Philadelphia",
    "TX": "Dallas",
    "UT": "Salt Lake City",
    "VA": "Ashburn",
    "WA": "Seattle",
}
"""The largest datacenter metro of each US state used, for regions known only to state level."""

CONTINENTS: dict[str, Continent] = {
    **dict.fromkeys(("US", "CA"), Continent.NA),
    **dict.fromkeys(
        ("BG", "CZ", "DE", "DK", "ES", "FI", "FR", "IS", "IT", "NL", "NO", "PL", "PT", "RO", "RU", "SE"),
        Continent.EU,
    ),
    **dict.fromkeys(("IL", "IN", "JP", "KR", "SG", "VN"), Continent.AS),
    "AU": Continent.OC,
}


@dataclass(frozen=True)
class RegionEntry:
    provider: str
    region: str
    display_name: str
    place: str
    """A key of PLACES: the city itself (metro), or the state's or country's representative point."""
    precision: str
    basis: str


# Basis texts, shared by many rows.
RUNPOD_STATE = "state code in RunPod datacenter id; coordinates of the state's largest datacenter metro"
STATE_COORDINATES = "coordinates of the state's largest datacenter metro"
COUNTRY_COORDINATES = "coordinates of a representative major datacenter city of that country"
RUNPOD_COUNTRY = f"country code in RunPod datacenter id; {COUNTRY_COORDINATES}"
LAMBDA_DOC = (
    "Lambda's region description {desc!r} (brevdev/cloud v1/providers/lambdalabs/location.go @cf41e6ae)"
)
CITY_IN_NAME = "city in the provider's region name"
NO_REGION = (
    "provider states no region; provider's home country; coordinates of its representative datacenter city"
)
COUNTRY_ONLY = "{what}; coordinates of a representative major datacenter city of that country"


def _runpod(region: str) -> RegionEntry:
    parts = region.split("-")
    if parts[0] == "US":
        state = parts[1]
        return RegionEntry(
            "runpod", region, f"{region} ({state}, US)", STATE_POINTS[state], "state", RUNPOD_STATE
        )
    if parts[:2] == ["CA", "MTL"]:
        basis = "Montreal in RunPod datacenter id (CA-MTL = Montreal, Canada)"
        return RegionEntry("runpod", region, f"{region} (Montreal, CA)", "Montreal", "metro", basis)
    if parts[:2] == ["SEA", "SG"]:
        basis = "Singapore (a city-state) in RunPod datacenter id"
        return RegionEntry("runpod", region, f"{region} (Singapore)", "Singapore", "metro", basis)
    country = parts[1]
    return RegionEntry(
        "runpod", region, f"{region} ({country})", COUNTRY_POINTS[country], "country", RUNPOD_COUNTRY
    )


RUNPOD_DATACENTERS = [
    "AP-IN-1",
    "AP-IN-2",
    "AP-JP-1",
    "CA-MTL-1",
    "CA-MTL-2",
    "CA-MTL-3",
    "CA-MTL-4",
    "EU-CZ-1",
    "EU-DK-1",
    "EU-FR-1",
    "EU-NL-1",
    "EU-RO-1",
    "EU-SE-1",
    "EU-SE-2",
    "EUR-IS-1",
    "EUR-IS-2",
    "EUR-IS-3",
    "EUR-IS-4",
    "EUR-IS-5",
    "EUR-NO-1",
    "EUR-NO-2",
    "OC-AU-1",
    "SEA-SG-1",
    "US-CA-1",
    "US-CA-2",
    "US-DE-1",
    "US-GA-1",
    "US-GA-2",
    "US-IL-1",
    "US-KS-1",
    "US-KS-2",
    "US-KS-3",
    "US-MD-1",
    "US-MO-1",
    "US-MO-2",
    "US-NC-1",
    "US-NC-2",
    "US-NE-1",
    "US-OR-1",
    "US-OR-2",
    "US-PA-1",
    "US-TX-1",
    "US-TX-2",
    "US-TX-3",
    "US-TX-4",
    "US-TX-5",
    "US-TX-6",
    "US-WA-1",
]


def _lambda(provider: str, region: str, description: str, place: str, precision: str) -> RegionEntry:
    basis = LAMBDA_DOC.format(desc=description)
    if precision == "state":
        basis += "; coordinates of the state's largest datacenter metro"
    elif precision == "country":
        basis += "; coordinates of a representative major datacenter city of that country"
    if provider != "lambda":
        basis = f"upstream Lambda region (Prime Intellect zone column); {basis}"
    return RegionEntry(provider, region, description, place, precision, basis)


LAMBDA_REGIONS = (
    ("asia-northeast-1", "Osaka, Japan", "Osaka", "metro"),
    ("asia-northeast-2", "Tokyo, Japan", "Tokyo", "metro"),
    ("asia-south-1", "India", "Mumbai", "country"),
    ("australia-east-1", "Sydney, Australia", "Sydney", "metro"),
    ("europe-central-1", "Germany", "Frankfurt", "country"),
    ("europe-south-1", "Italy", "Milan", "country"),
    ("me-west-1", "Israel", "Tel Aviv", "country"),
    ("us-east-1", "Virginia, USA", "Ashburn", "state"),
    ("us-east-2", "Washington D.C, USA", "Washington, D.C.", "metro"),
    ("us-east-3", "Washington D.C, USA", "Washington, D.C.", "metro"),
    ("us-midwest-1", "Illinois, USA", "Chicago", "state"),
    ("us-south-1", "Texas, USA", "Dallas", "state"),
    ("us-south-2", "North Texas, USA", "Dallas", "state"),
    ("us-south-3", "Central Texas, USA", "Austin", "state"),
    ("us-west-1", "California, USA", "Santa Clara", "state"),
    ("us-west-2", "Arizona, USA", "Phoenix", "state"),
    ("us-west-3", "Utah, USA", "Salt Lake City", "state"),
)
_LAMBDA_BY_CODE = {code: (desc, place, precision) for code, desc, place, precision in LAMBDA_REGIONS}


def _country_only(provider: str, region: str, country: str, what: str, display_name: str = "") -> RegionEntry:
    return RegionEntry(
        provider,
        region,
        display_name or region,
        COUNTRY_POINTS[country],
        "country",
        COUNTRY_ONLY.format(what=what),
    )


def _city(provider: str, region: str, city: str, basis: str = CITY_IN_NAME) -> RegionEntry:
    return RegionEntry(provider, region, region, city, "metro", basis)


NEBIUS_FI = (
    "Nebius eu-north1 is Finland (Prime Intellect files it under FI); Nebius's Finnish datacenter is at "
    "Mantsala (public reporting of its 75 MW site)"
)
NEBIUS_FR = "Nebius eu-west1: Prime Intellect files it under FR; city not confirmed from a stored source"
NEBIUS_US = "Nebius us-central1: Prime Intellect files it under US; city not confirmed from a stored source"
DATACRUNCH_FI = "Verda (ex-DataCrunch) FIN-nn datacenter id names Finland only"
HYPERSTACK_CA = "Hyperstack CANADA-1 names Canada only"


def _entries() -> list[RegionEntry]:
    entries: list[RegionEntry] = [_runpod(code) for code in RUNPOD_DATACENTERS]
    entries += [_lambda("lambda", code, desc, place, prec) for code, desc, place, prec in LAMBDA_REGIONS]
    entries += [
        # Azure regions missing from dgl/cloud-regions (opened after mid-2022)
        RegionEntry(
            "azure",
            "polandcentral",
            "Poland Central",
            "Warsaw",
            "metro",
            "Azure region Poland Central is in Warsaw",
        ),
        RegionEntry(
            "azure",
            "spaincentral",
            "Spain Central",
            "Madrid",
            "metro",
            "Azure region Spain Central is in Madrid",
        ),
        # single-region providers and providers without regions
        _city("cudo", "no-kristiansand-1", "Kristiansand"),
        _country_only("fluidstack", "FINLAND", "FI", "region name names Finland only"),
        _country_only("hotaisle", "default", "US", NO_REGION, "default (no region stated)"),
        _country_only("hyperbolic", "default", "US", NO_REGION, "default (no region stated)"),
        _country_only("seeweb", "default", "IT", NO_REGION, "default (no region stated)"),
        _country_only("hyperstack", "CANADA-1", "CA", HYPERSTACK_CA),
        _country_only("hyperstack", "US-1", "US", "Hyperstack US-1 names the United States only"),
        _country_only(
            "jarvislabs", "IN2", "IN", "JarvisLabs IN2 is in India (provider's region code); city not stated"
        ),
        _country_only("lium", "PT", "PT", "region is a country code"),
        _country_only("lium", "RU", "RU", "region is a country code"),
        _country_only("lium", "US", "US", "region is a country code"),
        _country_only("mithril", "us-central2-a", "US", "region name gives the United States only"),
        _country_only("mithril", "us-central2-b", "US", "region name gives the United States only"),
        RegionEntry("nebius", "eu-north1", "eu-north1 (Finland)", "Mantsala", "metro", NEBIUS_FI),
        _country_only("nebius", "eu-west1", "FR", NEBIUS_FR),
        _country_only("nebius", "us-central1", "US", NEBIUS_US),
        _city("oci", "eu-amsterdam-1", "Amsterdam"),
        _city("oci", "eu-stockholm-1", "Stockholm"),
        _country_only("verda", "FIN-02", "FI", DATACRUNCH_FI),
        _country_only("verda", "FIN-03", "FI", DATACRUNCH_FI),
        # Shadeform and Spheron region names carry the city
        _city("shadeform", "austin-usa-1", "Austin"),
        _city("shadeform", "dallas-usa-3", "Dallas"),
        _city("shadeform", "desmoines-usa-1", "Des Moines"),
        _city("shadeform", "newyork-usa-1", "New York"),
        _city("shadeform", "paris-france-1", "Paris"),
        _city("shadeform", "saltlakecity-usa-1", "Salt Lake City"),
        _city("shadeform", "tokyo-japan-5", "Tokyo"),
        _city("shadeform", "warsaw-poland-1", "Warsaw"),
        _country_only("spheron", "CANADA-1", "CA", "upstream Hyperstack CANADA-1 names Canada only"),
        _country_only(
            "spheron", "Finland 3", "FI", "region name names Finland only (upstream DataCrunch FIN-03)"
        ),
        _city("spheron", "dallas-usa-1", "Dallas"),
        _city("spheron", "montreal-canada-2", "Montreal"),
        _city("spheron", "newyork-usa-1", "New York"),
        _city("spheron", "paris-france-1", "Paris"),
        _city("spheron", "warsaw-poland-1", "Warsaw"),
        # Vast: free-text "State, CC, Continent" mapped by pricing.normalize.vast_region_code
        _country_only(
            "vast", "bg", "BG", "Vast location 'Bulgaria, BG, EU' names the country only", "Bulgaria, BG, EU"
        ),
        _country_only(
            "vast", "fr", "FR", "Vast location 'France, FR, EU' names the country only", "France, FR, EU"
        ),
        _country_only(
            "vast",
            "kr",
            "KR",
            "Vast location 'South Korea, KR, AS' names the country only",
            "South Korea, KR, AS",
        ),
        _country_only("vast", "us", "US", "Vast location ', US, NA' names the country only", ", US, NA"),
        _country_only(
            "vast", "vn", "VN", "Vast location 'Vietnam, VN, AS' names the country only", "Vietnam, VN, AS"
        ),
        RegionEntry(
            "vast",
            "us-fl",
            "Florida, US, NA",
            STATE_POINTS["FL"],
            "state",
            f"US state in Vast location 'Florida, US, NA'; {STATE_COORDINATES}",
        ),
        RegionEntry(
            "vast",
            "us-mi",
            "Michigan, US, NA",
            STATE_POINTS["MI"],
            "state",
            f"US state in Vast location 'Michigan, US, NA'; {STATE_COORDINATES}",
        ),
    ]
    entries += _prime_intellect_entries()
    return entries


def _prime_intellect_entries() -> list[RegionEntry]:
    """Prime Intellect's regions are its upstream providers' region codes (the source's zone column)."""
    pi = "primeintellect"
    upstream_lambda = [_lambda(pi, code, *_LAMBDA_BY_CODE[code]) for code in ("us-south-2", "us-west-3")]
    return [
        *upstream_lambda,
        _country_only(pi, "CANADA-1", "CA", f"upstream {HYPERSTACK_CA}"),
        _country_only(pi, "US-1", "US", "upstream Hyperstack US-1 names the United States only"),
        _country_only(pi, "FIN-02", "FI", f"upstream {DATACRUNCH_FI}"),
        _country_only(pi, "ICE-01", "IS", "upstream DataCrunch ICE-01; Prime Intellect files it under IS"),
        _country_only(pi, "US", "US", "upstream primecompute region 'US' names the country only"),
        _country_only(
            pi,
            "a3111bd4-550a-47d0-838a-0a52bff2ae3f",
            "US",
            "upstream dc_roan region is an opaque id; Prime Intellect files it under US",
        ),
        RegionEntry(
            pi,
            "eu-north1",
            "eu-north1 (Finland)",
            "Mantsala",
            "metro",
            f"upstream {NEBIUS_FI}; dc_wildebeest offers use the same label",
        ),
        _country_only(pi, "eu-west1", "FR", f"upstream {NEBIUS_FR}; dc_wildebeest offers use the same label"),
        _country_only(
            pi, "us-central1", "US", f"upstream {NEBIUS_US}; dc_wildebeest offers use the same label"
        ),
    ]


PROVIDER_REGIONS: tuple[RegionEntry, ...] = tuple(_entries())
