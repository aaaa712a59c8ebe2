"""Attachment bytes in GridFS; events and documents carry only the reference and SHA-256."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo import IndexModel

from lienthong.common.v1.common_pb2 import AttachmentRef
from lienthong_kit.errors import FieldViolation, InvalidArgument, NotFound
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


class AttachmentStore:
    def __init__(self, db: AsyncDatabase[Doc], *, max_bytes: int) -> None:
        self._bucket = AsyncGridFSBucket(db, bucket_name="attachments")
        self._files = db["attachments.files"]
        self.max_bytes = max_bytes

    async def create_indexes(self) -> None:
        await ensure_indexes(self._files, [IndexModel("metadata.owner")])

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
