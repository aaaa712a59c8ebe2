"""edXML streaming: peak memory of reading a package with a large attachment.

Figure: the peak RSS growth of ``parse_document(stream, spool=dir)`` on a package carrying a
40 MiB attachment; baseline: the same read with the attachment kept in memory. Each read runs
in a fresh process so ``ru_maxrss`` is its own. Results: docs/edxml.md.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ATTACHMENT_MIB = 40

READ = """
import resource, sys, time
from datetime import date
from pathlib import Path
from lienthong_edxml import parse_document
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
spool = Path(sys.argv[2]) if len(sys.argv) > 2 else None
start = time.perf_counter()
with open(sys.argv[1], "rb") as stream:
    package = parse_document(stream, spool=spool, today=date(2026, 12, 1))
elapsed = time.perf_counter() - start
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
print(f"{elapsed:.2f} {grown:.1f}")
"""


def _write_package(directory: Path) -> Path:
    from lienthong_edxml import (
        Attachment,
        Code,
        DocumentPackage,
        Organ,
        PromulgationInfo,
        write_document,
    )

    raw = directory / "raw.bin"
    digest = hashlib.sha256()
    with raw.open("wb") as out:
        for _ in range(ATTACHMENT_MIB):
            chunk = os.urandom(1024 * 1024)
            digest.update(chunk)
            out.write(chunk)
    attachment = Attachment(
        "big", "big.pdf", "application/pdf", raw.stat().st_size, digest.hexdigest(), path=raw
    )
    package = DocumentPackage(
        from_=Organ("000.00.00.H23"),
        to=(Organ("000.01.00.H23"),),
        code=Code("1", "QĐ-UBND"),
        promulgation=PromulgationInfo("", date(2026, 11, 20)),
        subject="benchmark",
        attachments=(attachment,),
    ).with_manifest()
    path = directory / "big.edxml"
    start = time.perf_counter()
    with path.open("wb") as out:
        write_document(package, out)
    print(f"write {path.stat().st_size / 2**20:.1f} MiB in {time.perf_counter() - start:.2f} s")
    return path


def _read(*args: str) -> tuple[float, float]:
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", READ, *args], capture_output=True, check=True, text=True
    )
    seconds, grown = result.stdout.split()
    return float(seconds), float(grown)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        package = _write_package(directory)
        spool = directory / "spool"
        spool.mkdir()
        spooled = _read(str(package), str(spool))
        in_memory = _read(str(package))
    print(f"read, spooled:   {spooled[0]:.2f} s, peak RSS +{spooled[1]:.1f} MiB")
    print(f"read, in memory: {in_memory[0]:.2f} s, peak RSS +{in_memory[1]:.1f} MiB")
    print(f"ratio (spooled / in memory peak growth): {spooled[1] / max(in_memory[1], 0.1):.3f}")


if __name__ == "__main__":
    main()
