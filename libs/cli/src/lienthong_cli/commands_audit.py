"""``lienthong audit`` (export, verify) and ``lienthong evidence`` (export, verify): the audit
chain and one document's evidence bundle, checked offline with the auditors' public key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import grpc
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from lienthong.document.v1 import document_service_pb2 as doc_pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.signature.v1 import signature_service_pb2 as sig_pb
from lienthong.signature.v1.signature_service_pb2_grpc import SignatureServiceStub
from lienthong_audit.verify import export_lines, load_public_keys, read_export, verify_export
from lienthong_cli.app import state
from lienthong_cli.errors import CliError, ExitCode
from lienthong_cli.evidence import NotYetSigned, audit_excerpt, verify_bundle, write_bundle
from lienthong_cli.options import TIMEOUT, OutputOption
from lienthong_cli.output import Output, err, out, print_json, to_dict

audit = typer.Typer(help="The audit chain: export it, verify it (online or offline).")
evidence = typer.Typer(help="One document's evidence bundle: export it, verify it offline.")

PublicKeys = Annotated[
    list[Path] | None,
    typer.Option(
        "--public-key",
        exists=True,
        dir_okay=False,
        help="The audit signer's Ed25519 public key (PEM); repeat for keys rotated out.",
    ),
]


def _keys(paths: list[Path] | None) -> dict[str, Ed25519PublicKey]:
    if not paths:
        raise CliError("--public-key is required to verify offline", ExitCode.USAGE)
    try:
        return load_public_keys(path.read_bytes() for path in paths)
    except ValueError as exc:
        raise CliError(f"--public-key: {exc}", ExitCode.USAGE) from exc


def _export(ctx: typer.Context, chain: str = "") -> Iterator[doc_pb.ExportAuditResponse]:
    target = state(ctx).target()
    with target.channel("document") as channel:
        yield from DocumentServiceStub(channel).ExportAudit(
            doc_pb.ExportAuditRequest(chain=chain), metadata=target.metadata(), timeout=300
        )


@audit.command("export")
def audit_export(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(dir_okay=False, help="The JSON-lines file to write.")],
    chain: Annotated[str, typer.Option(help="Only this chain, e.g. lienthong.units/0.")] = "",
) -> None:
    """Every audit entry, then every signed checkpoint (operator/observer), as JSON lines."""
    records = list(_export(ctx, chain))
    path.write_text("".join(line + "\n" for line in export_lines(records)), "utf-8")
    entries = sum(1 for r in records if r.HasField("entry"))
    err.print(f"{path}: {entries} entries, {len(records) - entries} checkpoints", markup=False)


@audit.command("verify")
def audit_verify(
    ctx: typer.Context,
    export: Annotated[
        Path | None,
        typer.Argument(exists=True, dir_okay=False, help="An export to check offline."),
    ] = None,
    public_key: PublicKeys = None,
    unsigned_grace: Annotated[
        float,
        typer.Option(
            help="Seconds an entry may stay unsigned (offline: before the newest checkpoint)."
        ),
    ] = 300.0,
    allow_unsigned: Annotated[
        bool, typer.Option("--allow-unsigned", help="Accept entries no checkpoint covers yet.")
    ] = False,
    output: OutputOption = Output.table,
) -> None:
    """Check the chains against the signed checkpoints: offline with EXPORT and --public-key,
    else on the platform (VerifyAudit, operator/observer). Exit 1 when not intact."""
    if export is not None:
        keys = _keys(public_key)
        try:
            with export.open(encoding="utf-8") as lines:
                records = list(read_export(lines))
        except ValueError as exc:
            raise CliError(f"{export}: {exc}", ExitCode.USAGE) from exc
        grace = None if allow_unsigned else timedelta(seconds=unsigned_grace)
        report = verify_export(records, keys, unsigned_grace=grace)
        reply = doc_pb.VerifyAuditResponse(
            intact=report.intact,
            entries_checked=report.checked,
            first_broken_entry=report.first_broken,
            problem=report.problem,
            checkpoints_verified=report.checkpoints,
        )
    else:
        target = state(ctx).target()
        with target.channel("document") as channel:
            reply = DocumentServiceStub(channel).VerifyAudit(
                doc_pb.VerifyAuditRequest(
                    unsigned_grace_seconds=0 if allow_unsigned else int(unsigned_grace)
                ),
                metadata=target.metadata(),
                timeout=300,
            )
    if output == Output.json:
        print_json(to_dict(reply))
    elif reply.intact:
        out.print(
            f"intact: {reply.entries_checked} entries, {reply.checkpoints_verified} signed"
            " checkpoints",
            markup=False,
        )
    else:
        out.print(
            f"NOT INTACT after {reply.entries_checked} entries: {reply.problem}", markup=False
        )
        out.print(f"first broken entry: {reply.first_broken_entry}", markup=False)
    if not reply.intact:
        raise typer.Exit(ExitCode.REFUSED)


def _latest(stamps: list[Timestamp]) -> datetime:
    return max(s.ToDatetime(tzinfo=UTC) for s in stamps if s.seconds or s.nanos)


def _json(message: Message) -> bytes:
    return json.dumps(to_dict(message), ensure_ascii=False, indent=2).encode()


@evidence.command("export")
def evidence_export(
    ctx: typer.Context,
    document_id: str,
    output_path: Annotated[
        Path, typer.Option("--output-file", "-o", dir_okay=False, help="The bundle (.zip).")
    ],
    audit_file: Annotated[
        Path | None,
        typer.Option(
            "--audit",
            exists=True,
            dir_okay=False,
            help="An `audit export` file (by an observer); default: ExportAudit as the caller.",
        ),
    ] = None,
) -> None:
    """Export a document the caller's unit sent: its metadata, attachments, signature report,
    status trail and the audit entries with their signed checkpoints, hashed in a manifest."""
    target = state(ctx).target()
    metadata = target.metadata()
    files: dict[str, bytes] = {}
    with target.channel("document") as channel:
        stub = DocumentServiceStub(channel)
        got = stub.GetDocument(
            doc_pb.GetDocumentRequest(document_id=document_id), metadata=metadata, timeout=TIMEOUT
        )
        trail = stub.TrackDocument(
            doc_pb.TrackDocumentRequest(document_id=document_id), metadata=metadata, timeout=TIMEOUT
        )
        files["document.json"] = _json(got)
        files["status-trail.json"] = _json(trail)
        for ref in got.attachments:
            parts = stub.GetAttachment(
                doc_pb.GetAttachmentRequest(
                    document_id=document_id, attachment_id=ref.attachment_id
                ),
                metadata=metadata,
                timeout=300,
            )
            data = b"".join(p.chunk for p in parts if p.WhichOneof("part") == "chunk")
            files[f"attachments/{ref.attachment_id}/{ref.name}"] = data
    with target.channel("signature") as channel:
        try:
            verification = SignatureServiceStub(channel).GetVerification(
                sig_pb.GetVerificationRequest(document_id=document_id),
                metadata=metadata,
                timeout=TIMEOUT,
            )
            files["verification.json"] = _json(verification)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            err.print("no signature report yet: the bundle has none", markup=False)
    if audit_file is not None:
        with audit_file.open(encoding="utf-8") as lines:
            records = list(read_export(lines))
    else:
        records = list(_export(ctx))
    start = got.document.submitted_at.ToDatetime(tzinfo=UTC)
    end = _latest([got.document.submitted_at, *(h.at for r in trail.recipients for h in r.history)])
    try:
        excerpt = audit_excerpt(records, start, end)
    except NotYetSigned as exc:
        raise CliError(f"audit: {exc}", ExitCode.UNAVAILABLE) from exc
    bundle = write_bundle(document_id, files, export_lines(excerpt), datetime.now(UTC))
    output_path.write_bytes(bundle)
    entries = sum(1 for r in excerpt if r.HasField("entry"))
    err.print(
        f"{output_path}: {len(got.attachments)} attachments, {entries} audit entries,"
        f" {len(excerpt) - entries} signed checkpoints",
        markup=False,
    )


@evidence.command("verify")
def evidence_verify(
    bundle: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The bundle (.zip).")],
    public_key: PublicKeys = None,
    output: OutputOption = Output.table,
) -> None:
    """Check a bundle with no platform access: every file's hash, the attachments against the
    recorded SHA-256, the audit entries' links and hashes up to a signed checkpoint, and the
    checkpoint signatures. Names every change; exit 1 when anything was changed."""
    report = verify_bundle(bundle.read_bytes(), _keys(public_key))
    if output == Output.json:
        print_json(report.as_dict())
    elif report.intact:
        out.print(
            f"intact: document {report.document_id}, {report.files} files, {report.attachments}"
            f" attachments, {report.audit_entries} audit entries on {report.chains} chains,"
            f" {report.checkpoints} signed checkpoints",
            markup=False,
        )
    else:
        out.print(f"NOT INTACT: {bundle}", markup=False)
        for problem in report.problems:
            out.print(f"  {problem}", markup=False)
    if not report.intact:
        raise typer.Exit(ExitCode.REFUSED)
