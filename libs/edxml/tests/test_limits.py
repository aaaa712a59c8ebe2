"""Large and hostile inputs: attachments stream to files, every cap is a problem, not a crash."""

from __future__ import annotations

import hashlib
import os
from datetime import date
from io import BytesIO
from pathlib import Path

import pytest

from lienthong_edxml import (
    Attachment,
    Code,
    DocumentPackage,
    InvalidPackage,
    Limits,
    Organ,
    PromulgationInfo,
    diagnose,
    document_bytes,
    parse_document,
    write_document,
)

TODAY = date(2026, 12, 1)


def _package(*attachments: Attachment) -> DocumentPackage:
    return DocumentPackage(
        from_=Organ("000.00.00.H23"),
        to=(Organ("000.01.00.H23"),),
        code=Code("15", "QĐ-UBND"),
        promulgation=PromulgationInfo("Lào Cai", date(2026, 11, 20)),
        subject="Về việc triển khai liên thông văn bản điện tử",
        attachments=attachments,
    ).with_manifest()


def test_a_large_attachment_is_spooled_to_a_file_with_its_digest(tmp_path: Path) -> None:
    data = os.urandom(12 * 1024 * 1024)  # above libxml2's 10 MB text-node hardening limit
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    big = Attachment("big", "big.pdf", "application/pdf", len(data), digest, path=source)
    package_file = tmp_path / "big.edxml"
    with package_file.open("wb") as out:
        write_document(_package(big), out)
    spool = tmp_path / "spool"
    spool.mkdir()

    with package_file.open("rb") as stream:
        package = parse_document(stream, spool=spool, today=TODAY)

    (attachment,) = package.attachments
    assert attachment == big
    assert attachment.data is None
    assert attachment.path is not None
    assert attachment.path.parent == spool
    assert attachment.path.read_bytes() == data


def test_an_invalid_package_leaves_no_spooled_file(tmp_path: Path) -> None:
    data = document_bytes(_package(Attachment.from_bytes("a", "a.pdf", "application/pdf", b"x")))
    subject = "Về việc triển khai liên thông văn bản điện tử".encode()
    data = data.replace(subject, b" ")
    spool = tmp_path / "spool"
    spool.mkdir()

    with pytest.raises(InvalidPackage) as info:
        parse_document(data, spool=spool, today=TODAY)

    assert [p.code for p in info.value.problems] == ["empty-element"]
    assert list(spool.iterdir()) == []


@pytest.mark.parametrize(
    ("limits", "code"),
    [
        pytest.param(Limits(max_package_bytes=2000), "oversized", id="package-bytes"),
        pytest.param(Limits(max_attachment_bytes=1000), "attachments-oversized", id="decoded"),
        pytest.param(Limits(max_elements=10), "too-many-elements", id="elements"),
        pytest.param(Limits(max_depth=4), "too-deep", id="depth"),
        pytest.param(Limits(max_text_chars=10), "text-too-long", id="text"),
    ],
)
def test_every_cap_is_reported(limits: Limits, code: str) -> None:
    data = document_bytes(
        _package(Attachment.from_bytes("a", "a.bin", "", b"\0" * 5000)),
    )

    problems = diagnose(data, limits=limits, today=TODAY)

    assert [p.code for p in problems] == [code]


def test_a_stream_is_read_in_chunks_of_any_size() -> None:
    data = document_bytes(_package(Attachment.from_bytes("a", "a.bin", "", os.urandom(10_000))))

    package = parse_document(BytesIO(data), limits=Limits(chunk_size=7), today=TODAY)

    assert package == parse_document(data, today=TODAY)


def test_deeply_nested_garbage_is_refused_without_recursion() -> None:
    data = b"<edXML>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</edXML>"

    problems = diagnose(data, today=TODAY)

    assert [p.code for p in problems] == ["too-deep"]


@pytest.mark.parametrize(
    ("encoded", "ok"),
    [
        pytest.param("aGVsbG8=", True, id="padded"),
        pytest.param("aGVsbG8", True, id="unpadded-tail"),
        pytest.param("aGVs\n bG8=\r\n", True, id="folded"),
        pytest.param("aGVsbG8=aGVs", False, id="data-after-padding"),
        pytest.param("aGVsb", False, id="single-char-group"),
        pytest.param("aGVs*G8=", False, id="bad-character"),
    ],
)
def test_base64_forms(encoded: str, ok: bool) -> None:
    data = document_bytes(_package(Attachment.from_bytes("a", "a.txt", "text/plain", b"hello")))
    data = data.replace(b"aGVsbG8=", encoded.encode())

    problems = diagnose(data, today=TODAY)

    assert [p.code for p in problems] == ([] if ok else ["bad-base64"])
