"""Safe, streaming reading of a package into a small header tree plus decoded attachments.

The bytes are fed to lxml in chunks through a parser target: the header elements are built
into a tree (small), while the text of every ``ContentTransferEncoded`` goes straight to an
incremental base64 decoder writing to memory, a spool file or nowhere, so the base64 is never
held whole. DOCTYPEs are refused outright (no DTD, no entity, no network is ever read), and
size, depth and element count are capped by ``Limits``.
"""

from __future__ import annotations

import binascii
import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import IO, Any, BinaryIO

from lxml import etree

from lienthong_edxml.problems import Problem, problem

__all__ = ["STREAM_MARK", "Limits", "Streamed", "read_tree", "safe_fromstring"]

# Set on each ContentTransferEncoded element of the tree: the index of its decoded stream.
STREAM_MARK = "{urn:x-lienthong:edxml}stream"
_WHITESPACE = str.maketrans("", "", " \t\r\n")


@dataclass(frozen=True)
class Limits:
    """Caps on a package read; every one is reported as a problem when exceeded."""

    max_package_bytes: int = 64 * 1024 * 1024
    max_attachment_bytes: int = 48 * 1024 * 1024  # decoded, all attachments together
    max_depth: int = 32
    max_elements: int = 20_000
    max_text_chars: int = 1024 * 1024  # any element other than an attachment's content
    chunk_size: int = 64 * 1024


@dataclass
class Streamed:
    """One decoded attachment: its size, SHA-256 and where the bytes went."""

    size: int = 0
    sha256: str = ""
    data: bytes | None = None
    path: Path | None = None
    error: str = ""


class _Fatal(Exception):
    def __init__(self, found: Problem) -> None:
        super().__init__(found.message_en)
        self.problem = found


@dataclass
class _Budget:
    limit: int
    used: int = 0

    def spend(self, amount: int) -> None:
        self.used += amount
        if self.used > self.limit:
            raise _Fatal(problem("attachments-oversized", "/", limit=self.limit))


@dataclass
class _Decoder:
    """Base64 text in, bytes out, four characters at a time, whatever the chunking."""

    result: Streamed
    out: IO[bytes] | None
    budget: _Budget
    digest: Any = field(default_factory=hashlib.sha256)
    pending: str = ""

    def feed(self, text: str) -> None:
        if self.result.error:
            return
        self.pending += text.translate(_WHITESPACE)
        whole = len(self.pending) - len(self.pending) % 4
        if whole:
            chunk, self.pending = self.pending[:whole], self.pending[whole:]
            self._decode(chunk)

    def finish(self) -> None:
        if not self.result.error and self.pending:
            if len(self.pending) % 4 == 1:
                self.result.error = "truncated: the last group has a single character"
            else:  # unpadded tails are common in circulation and unambiguous
                self._decode(self.pending + "=" * (4 - len(self.pending) % 4))
        self.result.sha256 = self.digest.hexdigest()
        if self.out is not None:
            if isinstance(self.out, BytesIO):
                self.result.data = self.out.getvalue()
            self.out.close()

    def _decode(self, chunk: str) -> None:
        try:
            decoded = binascii.a2b_base64(chunk.encode("ascii"), strict_mode=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            self.result.error = str(exc)
            return
        self.budget.spend(len(decoded))
        self.result.size += len(decoded)
        self.digest.update(decoded)
        if self.out is not None:
            self.out.write(decoded)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


class _Target:
    """lxml parser target: builds the header tree, diverts attachment text to decoders."""

    def __init__(self, limits: Limits, spool: Path | bool) -> None:
        self.limits = limits
        self.spool = spool
        self.builder = etree.TreeBuilder()
        self.streams: list[Streamed] = []
        self.budget = _Budget(limits.max_attachment_bytes)
        self.decoder: _Decoder | None = None
        self.path: list[str] = []
        self.siblings: list[dict[str, int]] = [{}]
        self.elements = 0
        self.text_chars = 0
        self.fatal: _Fatal | None = None

    def _xpath(self) -> str:
        return "/" + "/".join(self.path)

    def doctype(self, *_: object) -> None:
        self.fatal = _Fatal(problem("doctype-refused", "/"))
        raise self.fatal

    # lxml may report a callback's exception only after calling close(): keep it to re-raise
    def start(self, tag: str, attrib: dict[str, str], nsmap: dict[str | None, str]) -> None:
        try:
            self._start(tag, attrib, nsmap)
        except _Fatal as exc:
            self.fatal = exc
            raise

    def data(self, text: str) -> None:
        try:
            self._data(text)
        except _Fatal as exc:
            self.fatal = exc
            raise

    def _start(self, tag: str, attrib: dict[str, str], nsmap: dict[str | None, str]) -> None:
        local = _local(tag)
        counts = self.siblings[-1]
        counts[local] = counts.get(local, 0) + 1
        self.path.append(local if counts[local] == 1 else f"{local}[{counts[local]}]")
        self.siblings.append({})
        self.elements += 1
        self.text_chars = 0
        if len(self.path) > self.limits.max_depth:
            raise _Fatal(problem("too-deep", self._xpath(), limit=self.limits.max_depth))
        if self.elements > self.limits.max_elements:
            limit = self.limits.max_elements
            raise _Fatal(problem("too-many-elements", self._xpath(), limit=limit))
        attributes = dict(attrib)
        if local == "ContentTransferEncoded":
            attributes[STREAM_MARK] = str(len(self.streams))
            result = Streamed()
            self.streams.append(result)
            self.decoder = _Decoder(result, self._open_sink(), self.budget)
        try:
            # the target is given "" for the default prefix; the tree builder wants None
            self.builder.start(tag, attributes, {k or None: v for k, v in nsmap.items()})
        except ValueError as exc:  # libxml2 lets a few malformed names through, e.g. "x:"
            raise _Fatal(problem("not-xml", self._xpath(), detail=str(exc))) from exc

    def _open_sink(self) -> IO[bytes] | None:
        if self.spool is False:
            return None
        if self.spool is True:
            return BytesIO()
        sink = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by the decoder
            dir=self.spool, prefix="edxml-", suffix=".bin", delete=False
        )
        self.streams[-1].path = Path(sink.name)
        return sink

    def _data(self, text: str) -> None:
        if self.decoder is not None:
            self.decoder.feed(text)
            return
        self.text_chars += len(text)
        if self.text_chars > self.limits.max_text_chars:
            raise _Fatal(problem("text-too-long", self._xpath(), limit=self.limits.max_text_chars))
        self.builder.data(text)

    def end(self, tag: str) -> None:
        if self.decoder is not None:
            self.decoder.finish()
            self.decoder = None
        self.builder.end(tag)
        self.path.pop()
        self.siblings.pop()

    def close(self) -> Any:
        if self.fatal is not None:
            raise self.fatal
        try:
            return self.builder.close()
        except etree.XMLSyntaxError:
            # an empty tree: lxml then raises the parser's own, more precise syntax error
            return None

    def discard(self) -> None:
        if self.decoder is not None and self.decoder.out is not None:
            self.decoder.out.close()
        for stream in self.streams:
            if stream.path is not None:
                stream.path.unlink(missing_ok=True)


def _parser(target: object | None = None) -> Any:
    return etree.XMLParser(
        target=target,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def safe_fromstring(data: bytes) -> Any:
    """Parse a small trusted-shape fragment (a kept Signature) with the same refusals."""
    target = _Target(Limits(), spool=False)
    parser = _parser(target)
    parser.feed(data)
    return parser.close()


def _chunks(source: bytes | BinaryIO, size: int) -> Iterator[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source)
        for start in range(0, len(view), size):
            yield bytes(view[start : start + size])
        return
    while chunk := source.read(size):
        yield chunk


def read_tree(
    source: bytes | BinaryIO, limits: Limits, spool: Path | bool
) -> tuple[Any, list[Streamed], list[Problem]]:
    """The header tree and decoded attachments of ``source``, or the fatal problem.

    ``spool``: True keeps attachment bytes in memory, a directory spools them to files there,
    False only measures and hashes them (the doctor).
    """
    target = _Target(limits, spool)
    parser = _parser(target)
    total = 0
    try:
        for chunk in _chunks(source, limits.chunk_size):
            total += len(chunk)
            if total > limits.max_package_bytes:
                raise _Fatal(problem("oversized", "/", limit=limits.max_package_bytes))
            parser.feed(chunk)
        root = parser.close()
    except _Fatal as exc:
        target.discard()
        return None, [], [exc.problem]
    except etree.XMLSyntaxError as exc:
        target.discard()
        return None, [], [problem("not-xml", "/", detail=str(exc))]
    return root, target.streams, []
