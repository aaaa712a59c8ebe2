"""A corpus of hostile PDFs and CMS signatures, generated at test time, through VerifyDocument:
each is REJECTED with a reason within the call's deadline, and signature-service lives on."""

from __future__ import annotations

import zlib
from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2

from lienthong.common.v1.common_pb2 import VERDICT_REJECTED
from lienthong.signature.v1 import signature_service_pb2 as sig_pb
from lienthong.signature.v1.signature_service_pb2_grpc import SignatureServiceStub
from lienthong_local.platform import Platform
from lienthong_testing.callers import as_unit

pytestmark = pytest.mark.e2e

SENDER = "000.00.00.H23"


def pdf(
    objects: list[bytes], *, xref: bytes | None = None, trailer_size: int | None = None
) -> bytes:
    """A PDF of ``objects`` (numbered from 1) with a correct xref unless one is given."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    start = len(out)
    if xref is None:
        xref = b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
        xref += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += xref
    size = trailer_size if trailer_size is not None else len(objects) + 1
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, start)
    return bytes(out)


def page_objects(content: bytes, extra: bytes = b"") -> list[bytes]:
    return [
        b"<< /Type /Catalog /Pages 2 0 R " + extra + b">>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>",
        content,
    ]


def stream(data: bytes, *, deflate: bool = False) -> bytes:
    body = zlib.compress(data, 9) if deflate else data
    flt = b"/Filter /FlateDecode " if deflate else b""
    return b"<< /Length %d %s>>\nstream\n" % (len(body), flt) + body + b"\nendstream"


def plain() -> bytes:
    return pdf(page_objects(stream(b"BT /F1 12 Tf 72 720 Td (Hello) Tj ET")))


def truncated() -> bytes:
    return plain()[: len(plain()) // 2]


def decompression_bomb() -> bytes:
    # 256 MiB of zeros in about 256 KiB: must not be inflated whole
    compressor = zlib.compressobj(9)
    chunk = b"\x00" * (1 << 20)
    body = b"".join(compressor.compress(chunk) for _ in range(256)) + compressor.flush()
    content = b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(body) + body + b"\nendstream"
    return pdf(page_objects(content))


def deep_nesting() -> bytes:
    depth = 100_000
    return pdf(page_objects(stream(b"q Q"), extra=b"/Deep " + b"[" * depth + b"]" * depth + b" "))


def deep_dictionaries() -> bytes:
    depth = 50_000
    return pdf(page_objects(stream(b"q Q"), extra=b"/Deep " + b"<< /A " * depth + b">> " * depth))


def huge_xref() -> bytes:
    # an xref claiming two billion entries and a trailer to match
    return pdf(
        page_objects(stream(b"q Q")),
        xref=b"xref\n0 2000000000\n0000000000 65535 f \n",
        trailer_size=2_000_000_000,
    )


def xref_loop() -> bytes:
    data = plain()
    return data.replace(b"/Root 1 0 R", b"/Root 1 0 R /Prev %d" % data.rindex(b"xref"))


def many_signatures() -> bytes:
    count = 2_000
    objects = page_objects(stream(b"q Q"))
    fields = []
    for index in range(count):
        number = len(objects) + 1
        objects.append(
            b"<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /adbe.pkcs7.detached"
            b" /ByteRange [0 10 20 10] /Contents <" + b"30" * 64 + b"> >>"
        )
        objects.append(b"<< /FT /Sig /T (s%d) /V %d 0 R >>" % (index, number))
        fields.append(b"%d 0 R" % (number + 1))
    objects[0] = (
        b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields ["
        + b" ".join(fields)
        + b"] /SigFlags 3 >> >>"
    )
    return pdf(objects)


def deep_der() -> bytes:
    """A CMS signature of 20,000 nested DER SEQUENCEs (indefinite length)."""
    depth = 20_000
    return b"\x30\x80" * depth + b"\x00\x00" * depth


def truncated_cms() -> bytes:
    return b"\x30\x82\xff\xff\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02\xa0\x82"


def huge_length_cms() -> bytes:
    return b"\x30\x84\x7f\xff\xff\xff" + b"\x00" * 64


CORPUS: dict[str, Callable[[], list[sig_pb.DocumentFile]]] = {
    "empty": lambda: [sig_pb.DocumentFile(name="a.pdf", content=b"")],
    "not a pdf": lambda: [sig_pb.DocumentFile(name="a.pdf", content=b"\x89PNG\r\n\x1a\n" * 10)],
    "truncated": lambda: [sig_pb.DocumentFile(name="a.pdf", content=truncated())],
    "decompression bomb": lambda: [sig_pb.DocumentFile(name="a.pdf", content=decompression_bomb())],
    "deep array nesting": lambda: [sig_pb.DocumentFile(name="a.pdf", content=deep_nesting())],
    "deep dictionary nesting": lambda: [
        sig_pb.DocumentFile(name="a.pdf", content=deep_dictionaries())
    ],
    "huge xref": lambda: [sig_pb.DocumentFile(name="a.pdf", content=huge_xref())],
    "xref loop": lambda: [sig_pb.DocumentFile(name="a.pdf", content=xref_loop())],
    "many signatures": lambda: [sig_pb.DocumentFile(name="a.pdf", content=many_signatures())],
    "deep DER signature": lambda: [
        sig_pb.DocumentFile(name="a.pdf", content=plain()),
        sig_pb.DocumentFile(name="b.xlsx", content=b"PK\x03\x04"),
        sig_pb.DocumentFile(name="b.xlsx.p7s", content=deep_der()),
    ],
    "truncated CMS": lambda: [
        sig_pb.DocumentFile(name="a.pdf", content=plain()),
        sig_pb.DocumentFile(name="b.xlsx", content=b"PK\x03\x04"),
        sig_pb.DocumentFile(name="b.xlsx.p7s", content=truncated_cms()),
    ],
    "CMS claiming 2 GiB": lambda: [
        sig_pb.DocumentFile(name="a.pdf", content=plain()),
        sig_pb.DocumentFile(name="b.xlsx", content=b"PK\x03\x04"),
        sig_pb.DocumentFile(name="b.xlsx.p7s", content=huge_length_cms()),
    ],
    "unsigned plain pdf": lambda: [sig_pb.DocumentFile(name="a.pdf", content=plain())],
}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("case", list(CORPUS))
def test_a_hostile_file_is_rejected_with_a_reason(fuzz_platform: Platform, case: str) -> None:
    files = CORPUS[case]()
    if case == "empty":
        # refused before any parsing: a client error naming the field is the right answer
        with (
            pytest.raises(grpc.RpcError) as refused,
            grpc.insecure_channel(fuzz_platform.endpoint("signature-service")) as channel,
        ):
            SignatureServiceStub(channel).VerifyDocument(
                sig_pb.VerifyDocumentRequest(files=files), metadata=as_unit(SENDER), timeout=60
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "files[0].content" in (refused.value.details() or "")
        return
    with grpc.insecure_channel(
        fuzz_platform.endpoint("signature-service"),
        options=[("grpc.max_send_message_length", 64 * 1024 * 1024)],
    ) as channel:
        reply = SignatureServiceStub(channel).VerifyDocument(
            sig_pb.VerifyDocumentRequest(files=files),
            metadata=as_unit(SENDER),
            # the service's own validation deadline (the fuzz platform sets 180 s) plus slack
            timeout=240,
        )
    assert reply.verdict == VERDICT_REJECTED, f"{case}: {reply}"
    assert reply.reason.strip(), case
    service = fuzz_platform.processes["signature-service"]
    assert service.process.poll() is None, f"signature-service exited: see {service.log_path}"
    assert service.health(timeout=10) == health_pb2.HealthCheckResponse.SERVING
    print(f"\n{case}: {sum(len(f.content) for f in files)} bytes -> {reply.reason[:200]}")
