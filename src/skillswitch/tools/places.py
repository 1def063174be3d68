"""Time zones of the places a request names, from the tz database's own tables.

``places_named("What time is it in Japan?").zones`` is ``("Asia/Tokyo",)``. Places are the
cities of IANA zone names (``America/New_York``: New York), a few large cities the database
has no zone named after (Beijing, Mumbai, San Francisco), countries whose zones all keep one
clock (``zone.tab`` and ``iso3166.tab``: Japan, India, Germany) and, as a city's qualifier
only, US states and Canadian and Australian provinces. What the request names but no zone
answers for makes the result ``ambiguous``: an unknown place after "in", "at" or "for" ("in
Springfield"), a country of several clocks (the United States, China: Beijing and Xinjiang
time), a state alone ("in California"), or a city qualified by a country or state it is not
in ("Paris, Texas" is not Europe/Paris).
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.resources
import re
import unicodedata
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PlacesNamed", "places_named"]


@dataclass(frozen=True, slots=True)
class PlacesNamed:
    zones: tuple[str, ...]
    """Each zone named once, UTC first, then in the order the request names them."""
    ambiguous: bool
    """The request names a place that no single zone answers for (see the module's doc)."""


# Cities people ask for that no IANA zone is named after, with the zone they keep.
_MORE_CITIES = {
    "beijing": "Asia/Shanghai",
    "shenzhen": "Asia/Shanghai",
    "guangzhou": "Asia/Shanghai",
    "mumbai": "Asia/Kolkata",
    "bombay": "Asia/Kolkata",
    "delhi": "Asia/Kolkata",
    "new delhi": "Asia/Kolkata",
    "bangalore": "Asia/Kolkata",
    "bengaluru": "Asia/Kolkata",
    "chennai": "Asia/Kolkata",
    "osaka": "Asia/Tokyo",
    "kyoto": "Asia/Tokyo",
    "hanoi": "Asia/Bangkok",
    "san francisco": "America/Los_Angeles",
    "seattle": "America/Los_Angeles",
    "san diego": "America/Los_Angeles",
    "las vegas": "America/Los_Angeles",
    "washington dc": "America/New_York",
    "washington d c": "America/New_York",
    "boston": "America/New_York",
    "miami": "America/New_York",
    "atlanta": "America/New_York",
    "philadelphia": "America/New_York",
    "nyc": "America/New_York",
    "new york city": "America/New_York",
    "quebec city": "America/Toronto",
    "kuwait city": "Asia/Kuwait",
    "panama city": "America/Panama",
    "guatemala city": "America/Guatemala",
    "ho chi minh city": "Asia/Ho_Chi_Minh",
    "vatican city": "Europe/Rome",
    "houston": "America/Chicago",
    "dallas": "America/Chicago",
    "austin": "America/Chicago",
    "munich": "Europe/Berlin",
    "frankfurt": "Europe/Berlin",
    "hamburg": "Europe/Berlin",
    "milan": "Europe/Rome",
    "barcelona": "Europe/Madrid",
    "geneva": "Europe/Zurich",
    "st petersburg": "Europe/Moscow",
    "saint petersburg": "Europe/Moscow",
    "rio de janeiro": "America/Sao_Paulo",
    "abu dhabi": "Asia/Dubai",
    "tel aviv": "Asia/Jerusalem",
    "cape town": "Africa/Johannesburg",
}

_NOT_REGIONS = ("SystemV", "US", "posix", "right", "Arctic")

_MORE_COUNTRIES = {
    "uk": "GB",
    "united kingdom": "GB",
    "great britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "usa": "US",
    "united states of america": "US",
    "america": "US",
    "holland": "NL",
    "czech republic": "CZ",
    "ivory coast": "CI",
    "east timor": "TL",
    "vatican city": "VA",
}

# First-level divisions, read only as a city's qualifier ("Paris, Texas"); "Georgia" is a
# country too and stays ambiguous alone.
_DIVISIONS = {
    "US": (
        "alabama alaska arizona arkansas california colorado connecticut delaware florida "
        "georgia hawaii idaho illinois indiana iowa kansas kentucky louisiana maine maryland "
        "massachusetts michigan minnesota mississippi missouri montana nebraska nevada "
        "new_hampshire new_jersey new_mexico new_york north_carolina north_dakota ohio oklahoma "
        "oregon pennsylvania rhode_island south_carolina south_dakota tennessee texas utah "
        "vermont virginia washington west_virginia wisconsin wyoming district_of_columbia"
    ),
    "CA": (
        "alberta british_columbia manitoba new_brunswick newfoundland nova_scotia ontario "
        "prince_edward_island quebec saskatchewan yukon nunavut northwest_territories"
    ),
    "AU": (
        "new_south_wales queensland south_australia tasmania victoria western_australia "
        "northern_territory australian_capital_territory"
    ),
}

# Words that may follow "in", "at" or "for" without naming a place.
_NOT_PLACES = frozenset(
    [
        "right",
        "now",
        "today",
        "currently",
        "this",
        "the",
        "moment",
        "present",
        "local",
        "utc",
        "gmt",
        "general",
        "please",
        "total",
        "exactly",
        "precisely",
    ]
)
_PREPOSITIONS = frozenset({"in", "at", "for", "on"})
_HERE = frozenset({"here", "there", "home"})  # a place, but not one the request says
# After a place's name, a word that makes it another place: "Jersey City" is not Jersey.
_PLACE_SUFFIXES = frozenset(
    {
        "city", "county", "town", "township", "village", "island", "islands", "beach",
        "springs", "falls", "heights", "park", "valley", "bay", "harbor", "harbour", "station",
    }
)  # fmt: skip
# State and province codes, read only as a city's qualifier after a comma, in capitals.
_DIVISION_CODES = {
    "US": (
        "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV "
        "NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC"
    ),
    "CA": "AB BC MB NB NL NS NT NU ON PE QC SK YT",
    "AU": "NSW VIC QLD SA WA TAS NT ACT",
}
_LONGEST_NAME = 5  # words


@dataclass(frozen=True, slots=True)
class _Word:
    text: str  # as written, accents removed
    plain: str  # lower case

    @property
    def capitalised(self) -> bool:
        return self.text[:1].isupper()


def places_named(request: str) -> PlacesNamed:
    words = _words(request)
    plain = [word.plain for word in words]
    zones: list[str] = []
    ambiguous = False
    index = 0
    while index < len(words):
        found = _longest_name_at(plain, index)
        if found is None:
            if plain[index] in _HERE or (
                plain[index] in _PREPOSITIONS and _names_unknown_place(plain, index + 1)
            ):
                ambiguous = True
            index += 1
            continue
        (kind, value), index = found
        if index < len(words) and plain[index] in _PLACE_SUFFIXES:
            ambiguous = True  # "Jersey City", "Davis Island": a place the reader does not know
        elif kind == "utc":
            zones.insert(0, "UTC")
        elif kind == "city":
            index, fits = _qualified(words, plain, index, value)
            ambiguous |= not fits
            zones.append(value)
        elif kind == "country":
            clock = _one_clock(value)
            ambiguous |= clock is None
            zones += [clock] if clock else []
        else:  # a division alone, or a name that is two places
            ambiguous = True
    return PlacesNamed(tuple(dict.fromkeys(zones)), ambiguous)


def _qualified(words: list[_Word], plain: list[str], index: int, zone: str) -> tuple[int, bool]:
    """Past a city's qualifier ("Paris, France", "Paris Texas", "Portland, OR"), and whether
    the zone keeps that country's or state's time; an unknown capitalised word after a comma
    ("Chatham, Kent") is a qualifier too, one that no zone is known to fit."""
    comma = index < len(words) and plain[index] == ","
    at = index + comma
    if at >= len(words):
        return index, True
    found = _longest_name_at(plain, at)
    if found is not None and found[0][0] in ("country", "division"):
        (_, codes), end = found
        return end, bool(set(codes.split()) & _countries_of(zone))
    if not comma or not words[at].capitalised:
        return index, True
    codes = " ".join(c for c, listed in _DIVISION_CODES.items() if words[at].text in listed.split())
    if codes:
        return at + 1, bool(set(codes.split()) & _countries_of(zone))
    return at + 1, words[at].plain in _NOT_PLACES


def _plain(text: str) -> str:
    """Lower case words, accents removed: "Côte d'Ivoire" -> "cote d ivoire", "&" -> "and"."""
    return " ".join(word.plain for word in _words(text) if word.plain != ",")


def _words(text: str) -> list[_Word]:
    """The words of a text, accents removed, and its commas ("Paris, Texas")."""
    letters = unicodedata.normalize("NFKD", text.replace("&", " and "))
    unmarked = "".join(char for char in letters if not unicodedata.combining(char))
    # Words of other scripts are words too: "in 東京" names a place the tables do not have.
    return [_Word(w, w.lower()) for w in re.findall(r"[^\W\d_]+|,", unmarked)]


def _longest_name_at(words: list[str], start: int) -> tuple[tuple[str, str], int] | None:
    names = _names()
    for end in range(min(len(words), start + _LONGEST_NAME), start, -1):
        if (entry := names.get(" ".join(words[start:end]))) is not None:
            return entry, end
    return None


def _names_unknown_place(words: list[str], start: int) -> bool:
    start += start < len(words) and words[start] == "the"
    return (
        start < len(words)
        and words[start] not in _NOT_PLACES
        and _longest_name_at(words, start) is None
    )


@functools.cache
def _names() -> dict[str, tuple[str, str]]:
    """Every name -> ("city", zone), ("country", code), ("division", codes), ("utc", "UTC") or
    ("two", "") for a name that is a country and a division."""
    names: dict[str, tuple[str, str]] = {}
    for name, codes in _divisions().items():
        names[name] = ("division", codes)
    for name, code in _countries().items():
        names[name] = ("two", "") if name in names else ("country", code)
    listed = set(_zone_countries())
    # Zones the tables list first, so "buenos aires" is America/Argentina/Buenos_Aires, not its
    # link; a link's name never takes a country's or a state's ("Pacific/Samoa" is American
    # Samoa, "Australia/Victoria" a state). Antarctic stations ("Davis", "Casey") are left out.
    for zone in sorted(zoneinfo.available_timezones(), key=lambda z: (z not in listed, z)):
        region, _, city = zone.rpartition("/")
        if not region or region.startswith(("Etc", "Antarctica")) or region in _NOT_REGIONS:
            continue
        name = _plain(city.replace("_", " "))
        if name not in names or (zone in listed and names[name][0] != "city"):
            names[name] = ("city", zone)
    for name, zone in _MORE_CITIES.items():
        names[name] = ("city", zone)
    for name in ("utc", "gmt"):
        names[name] = ("utc", "UTC")
    return names


def _divisions() -> dict[str, str]:
    found: dict[str, set[str]] = defaultdict(set)
    for code, listed in _DIVISIONS.items():
        for name in listed.split():
            found[name.replace("_", " ")].add(code)
    return {name: " ".join(sorted(codes)) for name, codes in found.items()}


@functools.cache
def _countries() -> dict[str, str]:
    """Country names of ``iso3166.tab`` -> their code ("Korea (South)": "south korea",
    "Myanmar (Burma)": "myanmar" and "burma"); a name two countries share ("congo") is left
    out."""
    found: dict[str, set[str]] = defaultdict(set)
    for line in _table("iso3166.tab"):
        code, _, name = line.partition("\t")
        base = re.sub(r"\s*\(.*?\)", "", name)
        inside = name[len(base) :].strip(" ()") if name.startswith(base) else ""
        if inside in ("North", "South", "American"):
            found[_plain(f"{inside} {base}")].add(code)
            continue
        found[_plain(base)].add(code)
        if inside in ("Burma", "Swaziland"):
            found[_plain(inside)].add(code)
    for name, code in _MORE_COUNTRIES.items():
        found[name].add(code)
    return {name: codes.pop() for name, codes in found.items() if len(codes) == 1}


@functools.cache
def _zone_countries() -> dict[str, frozenset[str]]:
    """Zone -> the countries it keeps time for (``zone.tab`` and ``zone1970.tab``)."""
    found: dict[str, set[str]] = defaultdict(set)
    for name in ("zone.tab", "zone1970.tab"):
        for line in _table(name):
            codes, _, rest = line.partition("\t")
            zone = rest.split("\t")[1] if "\t" in rest else ""
            found[zone].update(codes.split(","))
    return {zone: frozenset(codes) for zone, codes in found.items() if zone}


def _countries_of(zone: str) -> frozenset[str]:
    tables = _zone_countries()
    return tables.get(zone) or tables.get(_links().get(zone, ""), frozenset())


@functools.cache
def _links() -> dict[str, str]:
    """Link -> zone ("Asia/Calcutta" -> "Asia/Kolkata"), from ``tzdata.zi``."""
    lines = (line.split() for line in _table("tzdata.zi") if line.startswith("L "))
    return {fields[2]: fields[1] for fields in lines if len(fields) == 3}


# China keeps one official time; the database's Asia/Urumqi is Xinjiang's informal time.
_NATIONAL_TIME = {"CN": "Asia/Shanghai"}


def _one_clock(country: str) -> str | None:
    """The zone that tells a country's time: its only one, or the first of ``zone.tab`` when
    all keep the same offsets in January and July or that first one is the mainland's (Spain,
    Portugal: their islands keep another); None when its zones differ (the United States)."""
    if country in _NATIONAL_TIME:
        return _NATIONAL_TIME[country]
    rows = [line.split("\t") for line in _table("zone.tab") if line.startswith(country + "\t")]
    if not rows:
        return None
    first = rows[0]
    mainland = len(first) > 3 and "mainland" in first[3]
    return first[2] if mainland or len({_offsets(row[2]) for row in rows}) == 1 else None


@functools.cache
def _offsets(zone: str) -> tuple[dt.timedelta | None, ...]:
    year = dt.datetime.now(dt.UTC).year
    moments = (dt.datetime(year, month, 15, 12, tzinfo=dt.UTC) for month in (1, 7))
    try:
        tz = zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return (None,)
    return tuple(moment.astimezone(tz).utcoffset() for moment in moments)


@functools.cache
def _table(name: str) -> tuple[str, ...]:
    """The data lines of one of the tz database's tables: the system's copy, else the
    ``tzdata`` package's; none when neither is installed (then no country is read)."""
    for folder in zoneinfo.TZPATH:
        if (path := Path(folder) / name).is_file():
            text = path.read_text(encoding="utf-8")
            break
    else:
        try:
            text = importlib.resources.files("tzdata.zoneinfo").joinpath(name).read_text("utf-8")
        except (ModuleNotFoundError, FileNotFoundError):
            return ()
    return tuple(line for line in text.splitlines() if line and not line.startswith("#"))
