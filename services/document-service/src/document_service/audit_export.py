"""Dump the audit log (the store's entries, then the checkpoint topic) as JSON lines for the
offline verifier, from a host with platform access, without going through the gRPC API:

    python -m document_service.audit_export audit.jsonl [--chain CHAIN]   (LIENTHONG_* settings)

The output is what ``ExportAudit`` streams, one record a line; check it anywhere with
``python -m lienthong_audit audit.jsonl --public-key audit.pub.pem``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from document_service.audit import AuditLog
from document_service.checkpoints import SignedAudit, checkpoint_topic
from document_service.settings import Settings
from lienthong_audit.verify import export_lines
from lienthong_kit.kafka import Topics
from lienthong_kit.mongo import connect
from lienthong_kit.settings import SettingsError, load_settings

__all__ = ["dump", "main"]


async def dump(settings: Settings, out: TextIO, chain: str = "") -> int:
    """Write every record (of one chain, if named) to ``out``; the number written."""
    client = connect(settings.mongo_url, app_name="document-service-audit-export")
    try:
        audit = AuditLog(client[f"{settings.mongo_database_prefix}document"])
        topic = checkpoint_topic(Topics(settings.topic_prefix))
        signed = SignedAudit(audit, settings, topic, {}, unsigned_grace_seconds=0)
        records = [record async for record in signed.export(chain)]
    finally:
        await client.close()
    for line in export_lines(records):
        out.write(line + "\n")
    return len(records)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m document_service.audit_export",
        description="Write the audit log and its signed checkpoints as JSON lines.",
    )
    parser.add_argument("out", type=Path, help="file to write (JSON lines)")
    parser.add_argument("--chain", default="", help="only this chain, e.g. lienthong.units/0")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(Settings)
    except SettingsError as exc:
        print(f"audit_export: {exc}", file=sys.stderr)
        return 2
    with args.out.open("w", encoding="utf-8") as out:
        count = asyncio.run(dump(settings, out, args.chain))
    print(f"{count} records written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
