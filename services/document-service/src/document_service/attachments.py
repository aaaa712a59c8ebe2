"""Attachment bytes in GridFS; events and documents carry only the reference and SHA-256."""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo import IndexModel

from lienthong.common.v1.common_pb2 import AttachmentRef
from lienthong_kit.errors import FieldViolation, InvalidArgument, NotFound
from lienthong_kit.infra import every
from lienthong_kit.logs import get_logger
from lienthong_kit.mongo import AsyncDatabase, Doc, ensure_indexes

__all__ = ["ALLOWED_TYPES", "AttachmentStore"]

# PDF and the office formats agencies exchange (Decree 30/2020 appendix formats).
ALLOWED_TYPES = frozenset(
    {
        "application/pdf",
        "application/msword",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.ms-excel",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/pkcs7-signature",
        "application/zip",
        "image/jpeg",
        "image/png",
        "image/tiff",
    }
)
CHUNK = 255 * 1024
log = get_logger(__name__)
Referenced = Callable[[list[str]], Awaitable[set[str]]]


class AttachmentStore:
    def __init__(
        self,
        db: AsyncDatabase[Doc],
        *,
        max_bytes: int,
        max_total_bytes: int = 50 * 1024 * 1024,
        unreferenced_seconds: float = 86_400.0,
    ) -> None:
        self._bucket = AsyncGridFSBucket(db, bucket_name="attachments")
        self._files = db["attachments.files"]
        self.max_bytes = max_bytes
        #: the most one document's attachments may hold together
        self.max_total_bytes = max_total_bytes
        self._unreferenced = timedelta(seconds=unreferenced_seconds)

    async def create_indexes(self) -> None:
        await ensure_indexes(
            self._files, [IndexModel("metadata.owner"), IndexModel("metadata.uploaded_at")]
        )

    async def remove_unreferenced(self, referenced: Referenced, limit: int = 500) -> int:
        """Remove attachments uploaded longer ago than the bound and named by no document;
        returns how many were removed."""
        before = datetime.now(UTC) - self._unreferenced
        cursor = self._files.find(
            {"metadata.uploaded_at": {"$lt": before}}, {"_id": 1}, limit=limit
        )
        old = [row["_id"] async for row in cursor]
        if not old:
            return 0
        kept = await referenced(old)
        removed = 0
        for attachment_id in old:
            if attachment_id in kept:
                # referenced for good: never looked at again
                await self._files.update_one(
                    {"_id": attachment_id}, {"$unset": {"metadata.uploaded_at": ""}}
                )
                continue
            with contextlib.suppress(NoFile):
                await self._bucket.delete(attachment_id)
                removed += 1
        if removed:
            log.info("unreferenced_attachments_removed", count=removed)
        return removed

    async def sweep(self, referenced: Referenced) -> None:
        """Run :meth:`remove_unreferenced` forever (a background task); a round that meets
        the store down (FerretDB's backend-down answers included) is retried at the next."""
        seconds = max(1.0, min(300.0, self._unreferenced.total_seconds() / 2))

        async def one_round() -> None:
            while await self.remove_unreferenced(referenced):
                pass

        await every(seconds, one_round, task="attachments_sweep")

    async def upload(
        self, owner: str, name: str, mime_type: str, chunks: AsyncIterator[bytes]
    ) -> AttachmentRef:
        problems = []
        if not name.strip() or len(name) > 255:
            problems.append(FieldViolation("header.name", "is required, at most 255 characters"))
        if mime_type not in ALLOWED_TYPES:
            problems.append(
                FieldViolation("header.mime_type", f"{mime_type!r} is not an accepted format")
            )
        if problems:
            raise InvalidArgument(problems)
        attachment_id = str(uuid.uuid4())
        digest = hashlib.sha256()
        size = 0
        stream = self._bucket.open_upload_stream_with_id(
            attachment_id,
            name,
            chunk_size_bytes=CHUNK,
            metadata={"owner": owner, "mime_type": mime_type, "uploaded_at": datetime.now(UTC)},
        )
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > self.max_bytes:
                    raise InvalidArgument(
                        [FieldViolation("chunk", f"the attachment exceeds {self.max_bytes} bytes")]
                    )
                digest.update(chunk)
                await stream.write(chunk)
        except BaseException:
            await stream.abort()
            raise
        if size == 0:
            await stream.abort()
            raise InvalidArgument([FieldViolation("chunk", "the attachment is empty")])
        await stream.close()
        await self._files.update_one(
            {"_id": attachment_id}, {"$set": {"metadata.sha256": digest.hexdigest()}}
        )
        return AttachmentRef(
            attachment_id=attachment_id,
            name=name,
            mime_type=mime_type,
            size_bytes=size,
            sha256=digest.hexdigest(),
        )

    async def owned(self, owner: str, attachment_ids: list[str]) -> dict[str, AttachmentRef]:
        """The caller's uploaded attachments among ``attachment_ids``."""
        found: dict[str, AttachmentRef] = {}
        cursor = self._files.find({"_id": {"$in": attachment_ids}, "metadata.owner": owner})
        async for raw in cursor:
            found[raw["_id"]] = _ref(raw)
        return found

    async def download(self, attachment_id: str) -> AsyncIterator[bytes]:
        try:
            stream = await self._bucket.open_download_stream(attachment_id)
        except NoFile as exc:
            raise NotFound(f"attachment_id: no attachment {attachment_id!r}") from exc
        while True:
            chunk = await stream.readchunk()
            if not chunk:
                break
            yield chunk


def _ref(raw: dict[str, Any]) -> AttachmentRef:
    metadata = raw.get("metadata") or {}
    return AttachmentRef(
        attachment_id=raw["_id"],
        name=raw["filename"],
        mime_type=metadata.get("mime_type", ""),
        size_bytes=int(raw["length"]),
        sha256=metadata.get("sha256", ""),
    )
