"""Write a realistic GIAS-format establishments CSV of any size, for benchmarks and tests.

    python -m bench.generate_gias --rows 50000 --out /tmp/gias.csv [--seed N] [--bad-fraction 0.01]

Realistic where it matters to the importer: the real column set (about 130 columns, most of
them ignored by us and many of them blank, as in the real download), cp1252 by default with
CRLF line ends, names with commas (quoted) and accents (non-ASCII in cp1252), real local
authority codes and names, 8-digit UKPRNs starting 10 (blank for many closed schools), and
GIAS's four status labels. ``--bad-fraction`` mixes in malformed rows of every kind the
importer must reject; :class:`Generated` says how many, so tests can assert exact counts.

Deterministic for a given seed, so a benchmark run is repeatable.
"""

from __future__ import annotations

import argparse
import csv
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

# (code, name) as GIAS spells them, commas included.
LOCAL_AUTHORITIES = [
    ("201", "City of London"), ("202", "Camden"), ("203", "Greenwich"), ("204", "Hackney"),
    ("205", "Hammersmith and Fulham"), ("206", "Islington"), ("207", "Kensington and Chelsea"),
    ("208", "Lambeth"), ("209", "Lewisham"), ("210", "Southwark"), ("211", "Tower Hamlets"),
    ("212", "Wandsworth"), ("213", "Westminster"), ("301", "Barking and Dagenham"),
    ("302", "Barnet"), ("303", "Bexley"), ("304", "Brent"), ("305", "Bromley"),
    ("306", "Croydon"), ("307", "Ealing"), ("308", "Enfield"), ("309", "Haringey"),
    ("310", "Harrow"), ("311", "Havering"), ("312", "Hillingdon"), ("313", "Hounslow"),
    ("314", "Kingston upon Thames"), ("315", "Merton"), ("316", "Newham"), ("317", "Redbridge"),
    ("318", "Richmond upon Thames"), ("319", "Sutton"), ("320", "Waltham Forest"),
    ("330", "Birmingham"), ("331", "Coventry"), ("332", "Dudley"), ("333", "Sandwell"),
    ("334", "Solihull"), ("335", "Walsall"), ("336", "Wolverhampton"), ("340", "Knowsley"),
    ("341", "Liverpool"), ("342", "St. Helens"), ("343", "Sefton"), ("344", "Wirral"),
    ("350", "Bolton"), ("351", "Bury"), ("352", "Manchester"), ("353", "Oldham"),
    ("354", "Rochdale"), ("355", "Salford"), ("356", "Stockport"), ("357", "Tameside"),
    ("358", "Trafford"), ("359", "Wigan"), ("370", "Barnsley"), ("371", "Doncaster"),
    ("372", "Rotherham"), ("373", "Sheffield"), ("380", "Bradford"), ("381", "Calderdale"),
    ("382", "Kirklees"), ("383", "Leeds"), ("384", "Wakefield"), ("390", "Gateshead"),
    ("391", "Newcastle upon Tyne"), ("392", "North Tyneside"), ("393", "South Tyneside"),
    ("394", "Sunderland"), ("420", "Isles of Scilly"), ("800", "Bath and North East Somerset"),
    ("801", "Bristol, City of"), ("802", "North Somerset"), ("803", "South Gloucestershire"),
    ("805", "Hartlepool"), ("806", "Middlesbrough"), ("807", "Redcar and Cleveland"),
    ("808", "Stockton-on-Tees"), ("810", "Kingston upon Hull, City of"),
    ("811", "East Riding of Yorkshire"), ("812", "North East Lincolnshire"),
    ("813", "North Lincolnshire"), ("815", "North Yorkshire"), ("816", "York"),
    ("821", "Luton"), ("822", "Bedford"), ("823", "Central Bedfordshire"),
    ("825", "Buckinghamshire"), ("826", "Milton Keynes"), ("830", "Derbyshire"),
    ("831", "Derby"), ("838", "Dorset"), ("839", "Bournemouth, Christchurch and Poole"),
    ("840", "County Durham"), ("841", "Darlington"), ("845", "East Sussex"),
    ("846", "Brighton and Hove"), ("850", "Hampshire"), ("851", "Portsmouth"),
    ("852", "Southampton"), ("855", "Leicestershire"), ("856", "Leicester"), ("857", "Rutland"),
    ("860", "Staffordshire"), ("861", "Stoke-on-Trent"), ("865", "Wiltshire"),
    ("866", "Swindon"), ("867", "Bracknell Forest"), ("868", "Windsor and Maidenhead"),
    ("869", "West Berkshire"), ("870", "Reading"), ("871", "Slough"), ("872", "Wokingham"),
    ("873", "Cambridgeshire"), ("874", "Peterborough"), ("876", "Halton"),
    ("877", "Warrington"), ("878", "Devon"), ("879", "Plymouth"), ("880", "Torbay"),
    ("881", "Essex"), ("882", "Southend-on-Sea"), ("883", "Thurrock"),
    ("884", "Herefordshire, County of"), ("885", "Worcestershire"), ("886", "Kent"),
    ("887", "Medway"), ("888", "Lancashire"), ("889", "Blackburn with Darwen"),
    ("890", "Blackpool"), ("891", "Nottinghamshire"), ("892", "Nottingham"),
    ("893", "Shropshire"), ("894", "Telford and Wrekin"), ("895", "Cheshire East"),
    ("896", "Cheshire West and Chester"), ("908", "Cornwall"), ("909", "Cumbria"),
    ("916", "Gloucestershire"), ("919", "Hertfordshire"), ("921", "Isle of Wight"),
    ("925", "Lincolnshire"), ("926", "Norfolk"), ("928", "Northamptonshire"),
    ("929", "Northumberland"), ("931", "Oxfordshire"), ("933", "Somerset"),
    ("935", "Suffolk"), ("936", "Surrey"), ("937", "Warwickshire"), ("938", "West Sussex"),
    ("940", "North Northamptonshire"), ("941", "West Northamptonshire"),
    ("942", "Cumberland"), ("943", "Westmorland and Furness"),
]  # fmt: skip
# GIAS puts establishments outside any LA (British schools overseas) under this pseudo-LA.
NO_LA = ("000", "Does not apply")

# (type name, type group, weight, phase, low age, high age)
TYPES = [
    ("Community school", "Local authority maintained schools", 30, "Primary", 4, 11),
    ("Voluntary aided school", "Local authority maintained schools", 8, "Primary", 4, 11),
    ("Voluntary controlled school", "Local authority maintained schools", 6, "Primary", 4, 11),
    ("Foundation school", "Local authority maintained schools", 4, "Secondary", 11, 16),
    ("Academy converter", "Academies", 18, "Secondary", 11, 18),
    ("Academy sponsor led", "Academies", 7, "Secondary", 11, 16),
    ("Free schools", "Free Schools", 2, "All-through", 4, 18),
    ("Community special school", "Special schools", 2, "Not applicable", 2, 19),
    ("Academy special converter", "Special schools", 1, "Not applicable", 3, 19),
    ("Pupil referral unit", "Local authority maintained schools", 1, "Not applicable", 5, 16),
    ("Local authority nursery school", "Local authority maintained schools", 1, "Nursery", 2, 5),
    ("Other independent school", "Independent schools", 9, "Not applicable", 3, 18),
    ("Other independent special school", "Independent schools", 2, "Not applicable", 5, 19),
    ("Further education", "Colleges", 2, "16 plus", 16, 99),
    ("Higher education institutions", "Universities", 1, "Not applicable", 18, 99),
]
STATUSES = [  # (label, weight): the full download keeps closed establishments
    ("Open", 60),
    ("Closed", 36),
    ("Open, but proposed to close", 1),
    ("Proposed to open", 3),
]
STATUS_CODES = {
    "Open": "1",
    "Closed": "2",
    "Open, but proposed to close": "4",
    "Proposed to open": "3",
}

PLACES = """Abbey Wood,Acton,Aldershot,Alton,Ashford,Aylesbury,Banbury,Barnstaple,Basingstoke,
Beeston,Belper,Beverley,Bicester,Bideford,Bingley,Blyth,Bootle,Boston,Bourne,Bracknell,
Braintree,Bridgwater,Bridport,Brixham,Bromsgrove,Buxton,Camborne,Cannock,Canterbury,Carlton,
Chatham,Chelmsford,Chesham,Chippenham,Chorley,Cirencester,Clacton,Clitheroe,Colchester,
Congleton,Corby,Crawley,Crewe,Cromer,Dartford,Daventry,Deal,Devizes,Didcot,Dorchester,Dover,
Droitwich,Dunstable,Eastleigh,Ely,Epsom,Evesham,Exmouth,Fakenham,Falmouth,Fareham,Farnham,
Felixstowe,Folkestone,Frome,Gillingham,Glossop,Gosport,Grantham,Gravesend,Halesowen,Harlow,
Harrogate,Hastings,Havant,Haverhill,Hexham,Hinckley,Hitchin,Horsham,Hove,Huntingdon,Ilkley,
Ipswich,Keighley,Kendal,Kettering,Keynsham,Kidderminster,Launceston,Leek,Lewes,Lichfield,
Louth,Ludlow,Lydney,Lymington,Maldon,Malvern,Margate,Market Harborough,Melton,Minehead,
Morpeth,Nantwich,Newbury,Newmarket,Newquay,Northallerton,Oakham,Okehampton,Ormskirk,Oswestry,
Penrith,Petersfield,Pickering,Poole,Redruth,Reigate,Retford,Ringwood,Ripon,Romsey,Ross,
Rugby,Ruislip,Rye,Saltash,Sandwich,Selby,Settle,Shaftesbury,Sheerness,Shipley,Sidmouth,
Skipton,Sleaford,Spalding,Stamford,Stevenage,Stowmarket,Stroud,Sudbury,Swanage,Tamworth,
Taunton,Tewkesbury,Thame,Thetford,Tiverton,Tonbridge,Totnes,Truro,Uckfield,Ulverston,
Wantage,Ware,Warminster,Watford,Wells,Whitby,Whitstable,Wimborne,Winsford,Witney,Woking,
Worksop,Yeovil""".replace("\n", "").split(",")
SUFFIXES = [
    "",
    "",
    "",
    " Green",
    " Park",
    " Hill",
    " Vale",
    " Road",
    " Lane",
    " Meadows",
    " Fields",
]
SAINTS = [
    "Mary", "Peter", "Paul", "John", "Michael", "Andrew", "George", "Joseph", "Anne", "Bede",
    "Thomas More", "Francis", "Margaret", "Catherine", "Augustine", "Hilda", "Chad", "Aidan",
    "Edmund", "Thérèse of Lisieux", "Wilfrid", "Oswald", "Cuthbert", "Benedict", "Teresa",
]  # fmt: skip
PATTERNS = [
    (30, "{place} Primary School"),
    (8, "{place} Infant School"),
    (8, "{place} Junior School"),
    (8, "{place} Academy"),
    (6, "{place} High School"),
    (4, "{place} Community College"),
    (4, "The {place} School"),
    (3, "{place} Nursery School"),
    (8, "St {saint}'s Catholic Primary School"),
    (6, "St {saint}'s Church of England Primary School"),
    (2, "{place} Church of England (Voluntary Aided) Primary School"),
    (2, "Christ Church, {place}, Church of England Primary School"),
    (1, "Notre Dame {place} Café & Nursery"),
    (2, "{place} Preparatory School"),
    (1, "{place} Sixth Form College"),
]
POSTCODE_AREAS = [
    "B", "BA", "BB", "BD", "BH", "BL", "BN", "BR", "BS", "CA", "CB", "CH", "CM", "CO", "CR",
    "CT", "CV", "CW", "DA", "DE", "DH", "DL", "DN", "DT", "DY", "E", "EC", "EN", "EX", "FY",
    "GL", "GU", "HA", "HD", "HG", "HP", "HR", "HU", "HX", "IG", "IP", "KT", "L", "LA", "LE",
    "LN", "LS", "LU", "M", "ME", "MK", "N", "NE", "NG", "NN", "NR", "NW", "OL", "OX", "PE", "PL",
    "PO", "PR", "RG", "RH", "RM", "S", "SE", "SG", "SK", "SL", "SM", "SN", "SO", "SP", "SR",
    "SS", "ST", "SW", "TA", "TF", "TN", "TQ", "TR", "TS", "TW", "UB", "W", "WA", "WC", "WD",
    "WF", "WN", "WR", "WS", "WV", "YO",
]  # fmt: skip
POSTCODE_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # the inward code never uses C, I, K, M, O or V
FIRST_NAMES = ["Sarah", "David", "Helen", "James", "Claire", "Mark", "Emma", "Paul", "Rachel"]
LAST_NAMES = ["Smith", "Jones", "Taylor", "Brown", "O'Neill", "Patel", "Khan", "Wilson", "Hughes"]
GORS = ["London", "North West", "South East", "Yorkshire and the Humber", "West Midlands"]

# The real download's columns, in its order. We fill the ones a reader would look at and leave
# most of the rest blank, as the real file does; the importer reads eight and ignores the rest.
COLUMNS = [
    "URN", "LA (code)", "LA (name)", "EstablishmentNumber", "EstablishmentName",
    "TypeOfEstablishment (code)", "TypeOfEstablishment (name)", "EstablishmentTypeGroup (code)",
    "EstablishmentTypeGroup (name)", "EstablishmentStatus (code)", "EstablishmentStatus (name)",
    "ReasonEstablishmentOpened (code)", "ReasonEstablishmentOpened (name)", "OpenDate",
    "ReasonEstablishmentClosed (code)", "ReasonEstablishmentClosed (name)", "CloseDate",
    "PhaseOfEducation (code)", "PhaseOfEducation (name)", "StatutoryLowAge", "StatutoryHighAge",
    "Boarders (code)", "Boarders (name)", "NurseryProvision (name)", "OfficialSixthForm (code)",
    "OfficialSixthForm (name)", "Gender (code)", "Gender (name)", "ReligiousCharacter (code)",
    "ReligiousCharacter (name)", "ReligiousEthos (name)", "Diocese (code)", "Diocese (name)",
    "AdmissionsPolicy (code)", "AdmissionsPolicy (name)", "SchoolCapacity", "SpecialClasses (code)",
    "SpecialClasses (name)", "CensusDate", "NumberOfPupils", "NumberOfBoys", "NumberOfGirls",
    "PercentageFSM", "TrustSchoolFlag (code)", "TrustSchoolFlag (name)", "Trusts (code)",
    "Trusts (name)", "SchoolSponsorFlag (name)", "SchoolSponsors (name)", "FederationFlag (name)",
    "Federations (code)", "Federations (name)", "UKPRN", "FEHEIdentifier",
    "FurtherEducationType (name)", "OfstedLastInsp", "LastChangedDate", "Street", "Locality",
    "Address3", "Town", "County (name)", "Postcode", "SchoolWebsite", "TelephoneNum",
    "HeadTitle (name)", "HeadFirstName", "HeadLastName", "HeadPreferredJobTitle",
    "BSOInspectorateName (name)", "InspectorateReport", "DateOfLastInspectionVisit",
    "NextInspectionVisit", "TeenMoth (name)", "TeenMothPlaces", "CCF (name)", "SENPRU (name)",
    "EBD (name)", "PlacesPRU", "FTProv (name)", "EdByOther (name)", "Section41Approved (name)",
    *[f"SEN{i} (name)" for i in range(1, 14)],
    "TypeOfResourcedProvision (name)", "ResourcedProvisionOnRoll", "ResourcedProvisionCapacity",
    "SenUnitOnRoll", "SenUnitCapacity", "GOR (code)", "GOR (name)",
    "DistrictAdministrative (code)", "DistrictAdministrative (name)", "AdministrativeWard (code)",
    "AdministrativeWard (name)", "ParliamentaryConstituency (code)",
    "ParliamentaryConstituency (name)", "UrbanRural (code)", "UrbanRural (name)",
    "GSSLACode (name)", "Easting", "Northing", "MSOA (name)", "LSOA (name)",
    "InspectorateName (name)", "SENStat", "SENNoStat", "BoardingEstablishment (name)",
    "PropsName", "PreviousLA (code)", "PreviousLA (name)", "PreviousEstablishmentNumber",
    "OfstedRating (name)", "RSCRegion (name)", "Country (name)", "UPRN", "SiteName",
    "QABName (code)", "QABName (name)", "EstablishmentAccredited (code)",
    "EstablishmentAccredited (name)", "QABReport", "CHNumber", "MSOA (code)", "LSOA (code)", "FSM",
    "AccreditationExpiryDate",
]  # fmt: skip

BAD_KINDS = (
    "missing_urn",
    "non_numeric_urn",
    "missing_name",
    "unknown_status",
    "long_name",
    "duplicate_urn",
    "bad_ukprn",
    "long_postcode",
)


@dataclass
class Generated:
    """What was written, so a test or benchmark can predict the import's counts exactly."""

    rows: int = 0
    good: int = 0
    bad: int = 0
    bad_by_kind: dict[str, int] = field(default_factory=dict)
    local_authority_codes: set[str] = field(default_factory=set)


class _Maker:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.type_weights = [t[2] for t in TYPES]
        self.type_codes = {t[0]: i for i, t in enumerate(TYPES, start=1)}
        self.pattern_weights = [p[0] for p in PATTERNS]
        self.status_weights = [s[1] for s in STATUSES]

    def name(self) -> tuple[str, str]:
        rng = self.rng
        place = rng.choice(PLACES) + rng.choice(SUFFIXES)
        pattern = rng.choices(PATTERNS, self.pattern_weights)[0][1]
        return pattern.format(place=place, saint=rng.choice(SAINTS)), place

    def postcode(self) -> str:
        rng = self.rng
        area = rng.choice(POSTCODE_AREAS)
        letters = "".join(rng.choices(POSTCODE_LETTERS, k=2))
        return f"{area}{rng.randint(1, 29)} {rng.randint(0, 9)}{letters}"

    def when(self, start: int, end: int) -> date:
        return date(start, 1, 1) + timedelta(days=self.rng.randrange((end - start) * 365))

    def row(self, urn: int) -> dict[str, str]:
        rng = self.rng
        la_code, la_name = NO_LA if rng.random() < 0.002 else rng.choice(LOCAL_AUTHORITIES)
        type_name, group, _, phase, low, high = rng.choices(TYPES, self.type_weights)[0]
        status = rng.choices(STATUSES, self.status_weights)[0][0]
        name, place = self.name()
        closed = status == "Closed"
        pupils = rng.randint(20, 1800)
        return {
            "URN": str(urn),
            "LA (code)": la_code,
            "LA (name)": la_name,
            "EstablishmentNumber": str(rng.randint(1000, 7999)),
            "EstablishmentName": name,
            "TypeOfEstablishment (code)": str(self.type_codes[type_name]),
            "TypeOfEstablishment (name)": type_name,
            "EstablishmentTypeGroup (name)": group,
            "EstablishmentStatus (code)": STATUS_CODES[status],
            "EstablishmentStatus (name)": status,
            "ReasonEstablishmentOpened (name)": rng.choice(["Not applicable", "Academy Converter"]),
            "OpenDate": self.when(1960, 2024).strftime("%d-%m-%Y"),
            "ReasonEstablishmentClosed (name)": "Academy Converter" if closed else "Not applicable",
            "CloseDate": self.when(2000, 2024).strftime("%d-%m-%Y") if closed else "",
            "PhaseOfEducation (name)": phase,
            "StatutoryLowAge": str(low),
            "StatutoryHighAge": str(high),
            "Boarders (name)": "No boarders",
            "NurseryProvision (name)": rng.choice(["Has Nursery Classes", "No Nursery Classes"]),
            "OfficialSixthForm (name)": "Has a sixth form" if high >= 18 else "Does not have",
            "Gender (name)": rng.choices(["Mixed", "Girls", "Boys"], [90, 5, 5])[0],
            "ReligiousCharacter (name)": "Does not apply",
            "AdmissionsPolicy (name)": "Not applicable",
            "SchoolCapacity": str(pupils + rng.randint(0, 200)),
            "CensusDate": "" if closed else "16-01-2025",
            "NumberOfPupils": "" if closed else str(pupils),
            "PercentageFSM": "" if closed else f"{rng.uniform(2, 60):.1f}",
            "TrustSchoolFlag (name)": "Not applicable",
            # Many closed establishments never had a UKPRN.
            "UKPRN": "" if closed and rng.random() < 0.5 else f"10{rng.randint(0, 999999):06d}",
            "LastChangedDate": self.when(2020, 2025).strftime("%d-%m-%Y"),
            "Street": f"{rng.randint(1, 200)} {place} Road",
            "Town": place.split()[0],
            "Postcode": self.postcode(),
            "SchoolWebsite": "" if closed else f"www.{place.replace(' ', '').lower()}.sch.uk",
            "TelephoneNum": f"0{rng.randint(1000000000, 1999999999)}",
            "HeadTitle (name)": rng.choice(["Mr", "Mrs", "Ms", "Dr", "Miss"]),
            "HeadFirstName": rng.choice(FIRST_NAMES),
            "HeadLastName": rng.choice(LAST_NAMES),
            "HeadPreferredJobTitle": "Headteacher",
            "GOR (name)": rng.choice(GORS),
            "UrbanRural (name)": rng.choice(["(England/Wales) Urban city and town", "Rural"]),
            "Easting": str(rng.randint(100000, 650000)),
            "Northing": str(rng.randint(10000, 650000)),
            "OfstedRating (name)": rng.choice(["Good", "Outstanding", "Requires improvement", ""]),
            "Country (name)": "",
            "UPRN": str(rng.randint(10000000, 100099999999)),
        }

    def spoil(self, row: dict[str, str], kind: str, earlier_urn: str | None) -> None:
        """Make one row malformed in the given way; the importer must reject exactly this row."""
        if kind == "missing_urn":
            row["URN"] = ""
        elif kind == "non_numeric_urn":
            row["URN"] = row["URN"][:-1] + "A"
        elif kind == "missing_name":
            row["EstablishmentName"] = "  "
        elif kind == "unknown_status":
            row["EstablishmentStatus (name)"] = "Temporarily closed"
        elif kind == "long_name":
            row["EstablishmentName"] = "Extremely Long Name " * 15  # 300 characters
        elif kind == "duplicate_urn":
            row["URN"] = earlier_urn or row["URN"]
        elif kind == "bad_ukprn":
            row["UKPRN"] = "UKPRN-1"
        elif kind == "long_postcode":
            row["Postcode"] = "NOT A REAL POSTCODE AT ALL"


def generate(
    out: Path,
    rows: int,
    *,
    seed: int = 2024,
    bad_fraction: float = 0.0,
    encoding: str = "cp1252",
) -> Generated:
    """Write ``rows`` data rows (good and bad together) to ``out`` and say what was written."""
    maker = _Maker(seed)
    rng = maker.rng
    stats = Generated(bad_by_kind=dict.fromkeys(BAD_KINDS, 0))
    urn = 100000
    good_urns: list[str] = []  # a sample, for duplicate rows to copy
    with out.open("w", encoding=encoding, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, restval="", lineterminator="\r\n")
        writer.writeheader()
        for i in range(rows):
            urn += rng.randint(1, 3)
            row = maker.row(urn)
            # The first row is always good, so a duplicate always has something to copy.
            if i and rng.random() < bad_fraction:
                kind = BAD_KINDS[stats.bad % len(BAD_KINDS)]  # every kind, evenly
                maker.spoil(row, kind, rng.choice(good_urns))
                stats.bad += 1
                stats.bad_by_kind[kind] += 1
            else:
                stats.good += 1
                if row["LA (code)"] != NO_LA[0]:
                    stats.local_authority_codes.add(row["LA (code)"])
                if len(good_urns) < 1000:
                    good_urns.append(row["URN"])
            writer.writerow(row)
            stats.rows += 1
    return stats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000, help="data rows (default 50000)")
    parser.add_argument("--out", type=Path, required=True, help="the CSV file to write")
    parser.add_argument("--seed", type=int, default=2024, help="random seed (default 2024)")
    parser.add_argument(
        "--bad-fraction", type=float, default=0.0, help="fraction of malformed rows (default 0)"
    )
    parser.add_argument(
        "--encoding", default="cp1252", help="cp1252 (default, as GIAS), utf-8 or utf-8-sig"
    )
    args = parser.parse_args(argv)
    stats = generate(
        args.out, args.rows, seed=args.seed, bad_fraction=args.bad_fraction, encoding=args.encoding
    )
    print(
        f"Wrote {stats.rows} rows ({stats.good} good, {stats.bad} malformed, "
        f"{len(stats.local_authority_codes)} local authorities) to {args.out}"
    )


if __name__ == "__main__":
    main()
