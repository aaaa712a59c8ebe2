"""``lienthong documents``, ``inbox`` and ``trust``: DocumentService and SignatureService."""

from __future__ import annotations

import mimetypes
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any

import typer
from google.protobuf.timestamp_pb2 import Timestamp
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)

from lienthong.common.v1 import common_pb2
from lienthong.document.v1 import document_service_pb2 as doc_pb
from lienthong.document.v1.document_service_pb2_grpc import DocumentServiceStub
from lienthong.signature.v1 import signature_service_pb2 as sig_pb
from lienthong.signature.v1.signature_service_pb2_grpc import SignatureServiceStub
from lienthong_cli.app import state
from lienthong_cli.errors import ExitCode
from lienthong_cli.options import TIMEOUT, OutputOption
from lienthong_cli.output import Output, err, out, print_json, print_json_line, table, to_dict

app = typer.Typer(help="Send documents with attachments, check signed files, get, track, recall.")
inbox = typer.Typer(help="The unit's inbox: list, watch (live), acknowledge.")
trust = typer.Typer(help="The signature trust store: list, add an anchor.")

VIETNAM = timezone(timedelta(hours=7))
_CHUNK = 256 * 1024
_RECALL_KINDS = {
    "recall": doc_pb.BusinessType.BUSINESS_TYPE_RECALL,
    "update": doc_pb.BusinessType.BUSINESS_TYPE_UPDATE,
    "replace": doc_pb.BusinessType.BUSINESS_TYPE_REPLACE,
}
Files = Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="The files.")]


def _timestamp(value: str, option: str) -> Timestamp:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint=option) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=VIETNAM)  # a local time in the province
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def _when(stamp: Timestamp) -> str:
    if not stamp.seconds and not stamp.nanos:
        return ""
    return stamp.ToDatetime(tzinfo=UTC).astimezone(VIETNAM).strftime("%Y-%m-%d %H:%M")


# --- documents ----------------------------------------------------------------------------


def _upload(stub: DocumentServiceStub, path: Path, metadata: Any, progress: Progress) -> Any:
    size = path.stat().st_size
    task = progress.add_task(path.name, total=size)
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"

    def parts() -> Iterator[doc_pb.UploadAttachmentRequest]:
        yield doc_pb.UploadAttachmentRequest(
            header=doc_pb.AttachmentHeader(name=path.name, mime_type=mime)
        )
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                yield doc_pb.UploadAttachmentRequest(chunk=chunk)
                progress.advance(task, len(chunk))

    reply = stub.UploadAttachment(parts(), metadata=metadata, timeout=max(TIMEOUT, size / 1e6))
    return reply.attachment


@app.command("send")
def send(
    ctx: typer.Context,
    files: Annotated[
        list[Path] | None,
        typer.Argument(exists=True, dir_okay=False, help="Attachments (the main PDF first)."),
    ] = None,
    to: Annotated[list[str] | None, typer.Option("--to", help="A recipient unit code.")] = None,
    to_under: Annotated[
        list[str] | None,
        typer.Option("--to-under", help="Every unit under this one (a scope)."),
    ] = None,
    number: Annotated[str, typer.Option(help="Số, e.g. 15.")] = "",
    notation: Annotated[str, typer.Option(help="Ký hiệu, e.g. QĐ-UBND.")] = "",
    document_type: Annotated[str, typer.Option("--type", help="e.g. QĐ; empty: Công văn.")] = "",
    subject: Annotated[str, typer.Option(help="Trích yếu.")] = "",
    summary: Annotated[str, typer.Option(help="Content summary.")] = "",
    priority: Annotated[int, typer.Option(min=0, max=4, help="0 thường ... 4 hỏa tốc.")] = 0,
    date: Annotated[str, typer.Option(help="Promulgation date; default today.")] = "",
    due: Annotated[str, typer.Option(help="Due for handling (ISO 8601).")] = "",
    signer: Annotated[str, typer.Option(help="Signer's full name.")] = "",
    position: Annotated[str, typer.Option(help="Signer's position.")] = "",
    competence: Annotated[str, typer.Option(help="TM., Q., KT., TL., TUQ.")] = "",
    key: Annotated[str, typer.Option(help="Idempotency key (default: a new one).")] = "",
    precheck: Annotated[
        bool,
        typer.Option(
            "--check", help="Check the uploaded files' signatures first; submit only if accepted."
        ),
    ] = False,
    output: OutputOption = Output.table,
) -> None:
    """Upload the files (with progress), then submit the document from your unit."""
    target = state(ctx).target()
    if not to and not to_under:
        raise typer.BadParameter("name at least one recipient", param_hint="--to")
    request = doc_pb.SubmitDocumentRequest(
        idempotency_key=key or str(uuid.uuid4()),
        recipients=common_pb2.Recipients(
            unit_codes=to or [],
            scopes=[common_pb2.RecipientScope(ancestor_code=code) for code in to_under or []],
        ),
        code=common_pb2.DocumentCode(number=number, notation=notation),
        document_type=document_type,
        subject=subject,
        content_summary=summary,
        priority=priority,
        promulgation_date=date or datetime.now(VIETNAM).date().isoformat(),
        signer=doc_pb.SignerInfo(competence=competence, position=position, full_name=signer),
    )
    if due:
        request.due_at.CopyFrom(_timestamp(due, "--due"))
    with target.channel("document") as channel:
        stub = DocumentServiceStub(channel)
        attachments = _uploads(stub, files or [], target.metadata())
        if precheck and attachments:
            verdict = _precheck(target, attachments, document_type, incoming=False).verification
            if verdict.verdict != common_pb2.Verdict.VERDICT_ACCEPTED:
                if output == Output.json:
                    print_json({"verification": to_dict(verdict)})
                else:
                    _print_verdict(verdict)
                err.print("not sent: the signature check rejected the files")
                raise typer.Exit(ExitCode.REFUSED)
            err.print("signatures checked: ACCEPTED")
        request.attachment_ids.extend(a.attachment_id for a in attachments)
        document = stub.SubmitDocument(request, metadata=target.metadata(), timeout=TIMEOUT)
    if output == Output.json:
        print_json(
            {
                "document": to_dict(document.document),
                "attachments": [to_dict(a) for a in attachments],
            }
        )
        return
    out.print(f"sent {document.document.edxml_document_id}")
    out.print(f"document id: {document.document.document_id}")
    for attachment in attachments:
        out.print(f"  {attachment.name}  {attachment.size_bytes} bytes  sha256 {attachment.sha256}")


def _verdict_lines(reply: sig_pb.VerifyDocumentResponse | doc_pb.Verification) -> list[list[str]]:
    return [
        [
            report.file_name,
            str(report.index),
            common_pb2.SignerKind.Name(report.signer_kind).removeprefix("SIGNER_KIND_").lower(),
            report.signer_subject,
            "valid" if report.valid else f"INVALID: {report.reason}",
        ]
        for report in reply.signatures
    ]


def _uploads(stub: DocumentServiceStub, files: list[Path], metadata: Any) -> list[Any]:
    """Each file uploaded with UploadAttachment, a progress bar per file (on stderr)."""
    with Progress(
        TextColumn("uploading {task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err,
        transient=True,
    ) as progress:
        return [_upload(stub, path, metadata, progress) for path in files]


def _precheck(
    target: Any, attachments: list[Any], document_type: str, incoming: bool
) -> sig_pb.VerifyAttachmentsResponse:
    """signature-service's verdict on uploaded files (VerifyAttachments: it fetches them)."""
    request = sig_pb.VerifyAttachmentsRequest(
        attachment_ids=[a.attachment_id for a in attachments],
        document_type=document_type,
        direction=(
            sig_pb.Direction.DIRECTION_INCOMING if incoming else sig_pb.Direction.DIRECTION_OUTGOING
        ),
    )
    size = sum(a.size_bytes for a in attachments)
    with (
        target.channel("signature") as channel,
        err.status(f"checking the signatures of {len(attachments)} files ({size} bytes)"),
    ):
        reply: sig_pb.VerifyAttachmentsResponse = SignatureServiceStub(channel).VerifyAttachments(
            request, metadata=target.metadata(), timeout=max(TIMEOUT, 60 + size / 1e6)
        )
    return reply


def _print_verdict(reply: sig_pb.VerifyDocumentResponse) -> bool:
    """Print the verdict (table form); True when accepted."""
    accepted = reply.verdict == common_pb2.Verdict.VERDICT_ACCEPTED
    out.print(
        ("ACCEPTED" if accepted else "REJECTED") + (f": {reply.reason}" if reply.reason else "")
    )
    if reply.policy_rule:
        out.print(f"policy: {reply.policy_rule}")
    for problem in reply.file_problems:
        out.print(f"  {problem.file_name}: {problem.problem}")
    if reply.signatures:
        table("signatures", ["file", "#", "kind", "signer", "result"], _verdict_lines(reply))
    return accepted


@app.command("check")
def check(
    ctx: typer.Context,
    files: Files,
    document_type: Annotated[str, typer.Option("--type", help="e.g. QĐ; empty: Công văn.")] = "",
    incoming: Annotated[
        bool, typer.Option("--incoming", help="Check as a received document.")
    ] = False,
    output: OutputOption = Output.table,
) -> None:
    """Check the signatures of a document's files before sending it (exit 1 if rejected).

    The files are streamed to document-service (UploadAttachment, with progress) and
    signature-service checks those uploads (VerifyAttachments): any size up to the verified
    maximum, nothing is submitted."""
    target = state(ctx).target()
    with target.channel("document") as channel:
        attachments = _uploads(DocumentServiceStub(channel), files, target.metadata())
    reply = _precheck(target, attachments, document_type, incoming)
    if output == Output.json:
        print_json(to_dict(reply))
        accepted = reply.verification.verdict == common_pb2.Verdict.VERDICT_ACCEPTED
    else:
        accepted = _print_verdict(reply.verification)
        for attachment in reply.attachments:
            out.print(
                f"checked {attachment.name}  {attachment.size_bytes} bytes"
                f"  sha256 {attachment.sha256}",
                soft_wrap=True,
            )
    if not accepted:
        raise typer.Exit(ExitCode.REFUSED)


@app.command("get")
def get(ctx: typer.Context, document_id: str, output: OutputOption = Output.table) -> None:
    """A document your unit sent or received (a recipient's read marks it read)."""
    target = state(ctx).target()
    with target.channel("document") as channel:
        reply = DocumentServiceStub(channel).GetDocument(
            doc_pb.GetDocumentRequest(document_id=document_id),
            metadata=target.metadata(),
            timeout=TIMEOUT,
        )
    if output == Output.json:
        print_json(to_dict(reply))
        return
    document = reply.document
    out.print(f"{document.edxml_document_id}  [{document.document_type}] {document.subject}")
    out.print(f"from {document.sender_code}, submitted {_when(document.submitted_at)}")
    if reply.HasField("verification"):
        verdict = common_pb2.Verdict.Name(reply.verification.verdict).removeprefix("VERDICT_")
        out.print(f"signatures: {verdict} {reply.verification.reason}")
    for attachment in reply.attachments:
        out.print(f"  attachment {attachment.name} ({attachment.size_bytes} bytes)")
    if reply.recipient_states:
        table(
            "recipients",
            ["recipient", "status", "recall", "bounce"],
            [
                [s.recipient_code, s.status_code, s.recall_status, s.bounce_reason]
                for s in reply.recipient_states
            ],
        )


@app.command("track")
def track(ctx: typer.Context, document_id: str, output: OutputOption = Output.table) -> None:
    """The sender's view: each recipient's status and history."""
    target = state(ctx).target()
    with target.channel("document") as channel:
        reply = DocumentServiceStub(channel).TrackDocument(
            doc_pb.TrackDocumentRequest(document_id=document_id),
            metadata=target.metadata(),
            timeout=TIMEOUT,
        )
    if output == Output.json:
        print_json(to_dict(reply))
        return
    out.print(
        f"{reply.document.edxml_document_id}" + ("  (frozen: recall asked)" if reply.frozen else "")
    )
    table(
        "recipients",
        ["recipient", "status", "history", "recall", "bounce"],
        [
            [
                r.recipient_code,
                r.status_code,
                ", ".join(f"{h.status_code} {_when(h.at)} {h.staff}".strip() for h in r.history),
                r.recall_status,
                r.bounce_reason,
            ]
            for r in reply.recipients
        ],
    )


@app.command("recall")
def recall(
    ctx: typer.Context,
    document_id: str,
    reason: Annotated[str, typer.Option(help="Why (required by the recipients' clerks).")],
    kind: Annotated[str, typer.Option(help="recall, update or replace.")] = "recall",
    replacement: Annotated[str, typer.Option(help="For replace: the new document id.")] = "",
    output: OutputOption = Output.table,
) -> None:
    """Ask every recipient to let the document be recalled, updated or replaced (13)."""
    if kind not in _RECALL_KINDS:
        raise typer.BadParameter(
            f"{kind!r}: one of {', '.join(_RECALL_KINDS)}", param_hint="--kind"
        )
    target = state(ctx).target()
    with target.channel("document") as channel:
        reply = DocumentServiceStub(channel).RecallDocument(
            doc_pb.RecallDocumentRequest(
                document_id=document_id,
                business_type=_RECALL_KINDS[kind],
                reason=reason,
                replacement_document_id=replacement,
            ),
            metadata=target.metadata(),
            timeout=TIMEOUT,
        )
    if output == Output.json:
        print_json(to_dict(reply))
    else:
        out.print(
            f"asked {len(reply.recipient_codes)} recipients: {', '.join(reply.recipient_codes)}"
        )


# --- inbox --------------------------------------------------------------------------------


def _entry_row(entry: doc_pb.InboxEntry) -> list[str]:
    return [
        entry.delivery_id,
        _when(entry.delivered_at),
        entry.document.sender_code,
        f"{entry.document.code.number}/{entry.document.code.notation}",
        entry.document.subject,
        entry.status_code + (f" (recall {entry.recall_status})" if entry.recall_status else ""),
        "" if entry.read else "new",
    ]


_INBOX_COLUMNS = ["delivery", "arrived", "from", "number", "subject", "status", ""]


@inbox.command("list")
def inbox_list(
    ctx: typer.Context,
    status: Annotated[list[str] | None, typer.Option(help="Only this status code.")] = None,
    unread: Annotated[bool, typer.Option("--unread", help="Only unopened ones.")] = False,
    since: Annotated[str, typer.Option(help="Arrived at or after (ISO 8601).")] = "",
    min_priority: Annotated[int, typer.Option(min=0, max=4)] = 0,
    limit: Annotated[int, typer.Option(min=1, help="At most this many entries.")] = 200,
    output: OutputOption = Output.table,
) -> None:
    """Your unit's inbox, newest first."""
    target = state(ctx).target()
    entries: list[doc_pb.InboxEntry] = []
    request = doc_pb.ListInboxRequest(
        status_codes=status or [], unread_only=unread, min_priority=min_priority
    )
    if since:
        request.since.CopyFrom(_timestamp(since, "--since"))
    with target.channel("document") as channel:
        stub = DocumentServiceStub(channel)
        while len(entries) < limit:
            request.page_size = min(200, limit - len(entries))
            reply = stub.ListInbox(request, metadata=target.metadata(), timeout=TIMEOUT)
            entries.extend(reply.entries)
            if not reply.next_page_token:
                break
            request.page_token = reply.next_page_token
    if output == Output.json:
        print_json([to_dict(entry) for entry in entries])
        return
    table(f"inbox: {len(entries)} entries", _INBOX_COLUMNS, [_entry_row(e) for e in entries])


@inbox.command("watch")
def inbox_watch(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="First replay what arrived since (ISO 8601).")] = "",
    count: Annotated[int, typer.Option(min=0, help="Stop after this many (0: until Ctrl-C).")] = 0,
    output: OutputOption = Output.table,
) -> None:
    """New deliveries as they arrive (a live tail); JSON output is one entry per line."""
    target = state(ctx).target()
    request = doc_pb.WatchInboxRequest()
    if since:
        request.since.CopyFrom(_timestamp(since, "--since"))
    seen = 0
    with target.channel("document") as channel:
        stream = DocumentServiceStub(channel).WatchInbox(request, metadata=target.metadata())
        err.print("watching the inbox (Ctrl-C stops)")
        try:
            for reply in stream:
                if output == Output.json:
                    print_json_line(to_dict(reply.entry))
                else:
                    out.print("  ".join(cell for cell in _entry_row(reply.entry) if cell))
                seen += 1
                if count and seen >= count:
                    break
        except KeyboardInterrupt:
            pass  # Ctrl-C is how a watch ends
        finally:
            stream.cancel()  # type: ignore[no-untyped-call]


@inbox.command("ack")
def inbox_ack(
    ctx: typer.Context,
    delivery_id: str,
    status_code: Annotated[
        str,
        typer.Argument(
            help="02 refused, 03 registered, 04 assigned, 05 in progress, 06 done, "
            "15 recall accepted, 16 recall refused."
        ),
    ],
    description: Annotated[str, typer.Option(help="Why (required for 02 and 16).")] = "",
    staff: Annotated[str, typer.Option(help="Who acted.")] = "",
    output: OutputOption = Output.table,
) -> None:
    """Move a delivery along the edXML status codes."""
    target = state(ctx).target()
    with target.channel("document") as channel:
        reply = DocumentServiceStub(channel).AcknowledgeDelivery(
            doc_pb.AcknowledgeDeliveryRequest(
                delivery_id=delivery_id,
                status_code=status_code,
                description=description,
                staff=staff,
            ),
            metadata=target.metadata(),
            timeout=TIMEOUT,
        )
    if output == Output.json:
        print_json(to_dict(reply))
    else:
        out.print(f"{reply.delivery_id}: status {reply.status_code}")


# --- trust store ----------------------------------------------------------------------------


def _anchor_row(anchor: sig_pb.TrustAnchor, kind: str) -> list[str]:
    return [
        kind,
        anchor.subject,
        anchor.sha256[:16],
        _when(anchor.not_after)[:10],
        anchor.source,
    ]


@trust.command("list")
def trust_list(ctx: typer.Context, output: OutputOption = Output.table) -> None:
    """The trust anchors in force, and the configured intermediates."""
    target = state(ctx).target()
    with target.channel("signature") as channel:
        reply = SignatureServiceStub(channel).ListTrustAnchors(
            sig_pb.ListTrustAnchorsRequest(), metadata=target.metadata(), timeout=TIMEOUT
        )
    if output == Output.json:
        print_json(to_dict(reply))
        return
    table(
        "trust store",
        ["", "subject", "sha256", "until", "source"],
        [_anchor_row(a, "anchor") for a in reply.anchors]
        + [_anchor_row(a, "intermediate") for a in reply.intermediates],
    )


@trust.command("add")
def trust_add(
    ctx: typer.Context,
    certificate: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="PEM or DER.")],
    output: OutputOption = Output.table,
) -> None:
    """Add a trust anchor (a self-signed CA certificate); idempotent."""
    target = state(ctx).target()
    with target.channel("signature") as channel:
        reply = SignatureServiceStub(channel).AddTrustAnchor(
            sig_pb.AddTrustAnchorRequest(certificate=certificate.read_bytes()),
            metadata=target.metadata(),
            timeout=TIMEOUT,
        )
    if output == Output.json:
        print_json(to_dict(reply))
    else:
        state_word = "added" if reply.added else "already there"
        out.print(f"{state_word}: {reply.anchor.subject} (sha256 {reply.anchor.sha256})")


__all__ = ["app", "inbox", "trust"]
