"""What is wrong with a package: every problem with its XPath, a stable code and a reason in
Vietnamese and English.

    EdxmlError                    the package cannot be used
    └── InvalidPackage            carries every Problem found (``problems``)

    try:
        package = parse_document(stream)
    except InvalidPackage as exc:
        for p in exc.problems:
            print(p.xpath, p.code, p.message_en)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CATALOGUE", "EdxmlError", "InvalidPackage", "Problem", "problem"]


@dataclass(frozen=True)
class Problem:
    xpath: str
    code: str
    message_vi: str
    message_en: str

    def as_dict(self) -> dict[str, str]:
        return {
            "xpath": self.xpath,
            "code": self.code,
            "message_vi": self.message_vi,
            "message_en": self.message_en,
        }


class EdxmlError(Exception):
    """A package cannot be read or written."""


class InvalidPackage(EdxmlError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        listed = "; ".join(f"{p.xpath}: {p.message_en}" for p in problems)
        super().__init__(f"invalid edXML package ({len(problems)} problems): {listed}")


# code -> (Vietnamese, English); {placeholders} are filled by problem().
CATALOGUE: dict[str, tuple[str, str]] = {
    "not-xml": ("Không phải XML hợp lệ: {detail}", "Not well-formed XML: {detail}"),
    "doctype-refused": (
        "Gói tin có khai báo DOCTYPE/DTD; không chấp nhận (nguy cơ XXE, bom XML)",
        "The package declares a DOCTYPE/DTD, which is refused (XXE and XML bomb risk)",
    ),
    "oversized": (
        "Gói tin vượt quá giới hạn {limit} byte",
        "The package exceeds the limit of {limit} bytes",
    ),
    "attachments-oversized": (
        "Tổng dung lượng tệp đính kèm vượt quá {limit} byte",
        "The attachments exceed {limit} bytes in total",
    ),
    "too-deep": (
        "Cây XML lồng sâu quá {limit} cấp",
        "The XML tree is nested deeper than {limit} levels",
    ),
    "too-many-elements": (
        "Gói tin có quá {limit} phần tử",
        "The package has more than {limit} elements",
    ),
    "text-too-long": (
        "Nội dung phần tử dài quá {limit} ký tự",
        "The element's text is longer than {limit} characters",
    ),
    "wrong-namespace": (
        "Không gian tên '{found}' không đúng; cần '{expected}'",
        "Namespace '{found}' is wrong; expected '{expected}'",
    ),
    "not-edxml": (
        "Phần tử gốc '{found}' không phải gói tin edXML",
        "The root element '{found}' is not an edXML package",
    ),
    "missing-element": (
        "Thiếu phần tử bắt buộc {name}",
        "The required element {name} is missing",
    ),
    "empty-element": ("Phần tử {name} không được để trống", "The element {name} must not be empty"),
    "bad-organ-id": (
        "Mã định danh '{value}' không hợp lệ (chữ A-Z, số 0-9 và dấu chấm, tối đa 35 ký tự)",
        "The identifier code '{value}' is invalid (A-Z, 0-9 and dots, at most 35 characters)",
    ),
    "duplicate-recipient": (
        "Nơi nhận {value} bị lặp",
        "The recipient {value} is listed twice",
    ),
    "bad-priority": (
        "Độ khẩn '{value}' phải là số từ 0 đến 4",
        "Priority '{value}' must be a number from 0 to 4",
    ),
    "bad-integer": ("'{value}' không phải là số nguyên", "'{value}' is not an integer"),
    "bad-date": (
        "'{value}' không phải ngày hợp lệ (yyyy/MM/dd)",
        "'{value}' is not a valid date (yyyy/MM/dd)",
    ),
    "bad-timestamp": (
        "'{value}' không phải thời điểm hợp lệ (yyyy/MM/dd HH:mm:ss)",
        "'{value}' is not a valid timestamp (yyyy/MM/dd HH:mm:ss)",
    ),
    "future-promulgation-date": (
        "Ngày ban hành {value} ở tương lai (hôm nay {today}, giờ Việt Nam)",
        "The promulgation date {value} is in the future (today is {today}, Vietnam time)",
    ),
    "due-before-promulgation": (
        "Hạn xử lý {value} trước ngày ban hành {promulgated}",
        "The due date {value} is before the promulgation date {promulgated}",
    ),
    "bad-business-doc-type": (
        "Loại nghiệp vụ '{value}' phải là 0 (mới), 1 (thu hồi), 2 (cập nhật) hoặc 3 (thay thế)",
        "Business type '{value}' must be 0 (new), 1 (recall), 2 (update) or 3 (replace)",
    ),
    "bad-status-code": (
        "Mã trạng thái '{value}' không thuộc danh sách 01-06, 13, 15, 16",
        "Status code '{value}' is not one of 01-06, 13, 15, 16",
    ),
    "manifest-missing-attachment": (
        "Danh mục tham chiếu cid:{value} nhưng không có tệp đính kèm tương ứng",
        "The manifest references cid:{value} but no attachment carries it",
    ),
    "attachment-not-in-manifest": (
        "Tệp đính kèm cid:{value} không có trong danh mục edXMLManifest",
        "The attachment cid:{value} is not listed in the edXMLManifest",
    ),
    "duplicate-content-id": (
        "Mã nội dung cid:{value} bị lặp",
        "The content id cid:{value} is used twice",
    ),
    "bad-base64": (
        "Nội dung tệp đính kèm không phải base64 hợp lệ: {detail}",
        "The attachment content is not valid base64: {detail}",
    ),
    "bad-signature-xml": (
        "Phần tử chữ ký không đọc được: {detail}",
        "The signature element cannot be read: {detail}",
    ),
}


def problem(code: str, xpath: str, **params: Any) -> Problem:
    vi, en = CATALOGUE[code]
    return Problem(xpath, code, vi.format(**params), en.format(**params))
