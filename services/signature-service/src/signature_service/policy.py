"""Which signatures a document needs, by document type and direction, and the verdict.

Rules are ``<types>@<direction>=<requirement>``, the first matching rule applies:

    SY|TrS|SL@*=organisation        copies are certified by the organisation alone
    *@*=person-then-organisation    everything else: the competent person, then the organisation

``<types>`` is ``*`` or notations separated by ``|`` (``-`` is Công văn, which has none);
``<direction>`` is ``outgoing``, ``incoming`` or ``*``; ``<requirement>`` is ``organisation``,
``person-then-organisation`` or ``person-and-organisation`` (either order). Every appendix (a
file after the main document) needs a valid organisation signature of its own (PAdES or a
``.p7s``), and every signature present must be valid.

The verdict names the rule that failed:

    no-signed-file                      nothing to verify (no file, or no signature at all)
    readable-files                      a file is not what it claims or cannot be read
    signatures-valid                    a signature fails a check (the check is named)
    personal-signature-required         no valid signature of a person on the main document
    organisation-signature-required     no valid signature of the organisation on it
    organisation-signature-after-personal   the organisation signed before the person
    appendix-organisation-signature-required   an appendix has no valid organisation signature
"""

from __future__ import annotations

from dataclasses import dataclass, field

from signature_service.engine import FileResult, SignatureResult

__all__ = ["DEFAULT_RULES", "Decision", "Policy", "PolicyRule", "parse_rules"]

DEFAULT_RULES = ("SY|TrS|SL@*=organisation", "*@*=person-then-organisation")
REQUIREMENTS = ("organisation", "person-then-organisation", "person-and-organisation")
DIRECTIONS = ("outgoing", "incoming", "*")
PERSON, ORGANISATION = 1, 2


@dataclass(frozen=True)
class PolicyRule:
    text: str
    types: frozenset[str] | None  # None: every type
    direction: str
    requirement: str

    def matches(self, document_type: str, direction: str) -> bool:
        kind = document_type.strip() or "-"
        type_ok = self.types is None or kind.casefold() in self.types
        return type_ok and self.direction in ("*", direction)


def parse_rules(texts: tuple[str, ...]) -> tuple[list[PolicyRule], list[str]]:
    """The rules and every problem found in them."""
    rules, problems = [], []
    for text in texts:
        head, _, requirement = text.partition("=")
        types, _, direction = head.partition("@")
        if not requirement or not direction or not types:
            problems.append(f"{text!r}: expected <types>@<direction>=<requirement>")
            continue
        if direction not in DIRECTIONS:
            problems.append(f"{text!r}: direction must be one of {', '.join(DIRECTIONS)}")
            continue
        if requirement not in REQUIREMENTS:
            problems.append(f"{text!r}: requirement must be one of {', '.join(REQUIREMENTS)}")
            continue
        kinds = None if types == "*" else frozenset(t.strip().casefold() for t in types.split("|"))
        rules.append(PolicyRule(text, kinds, direction, requirement))
    return rules, problems


@dataclass
class Decision:
    accepted: bool
    reason: str
    failed_rule: str = ""
    rule: str = ""
    personal_valid: bool = False
    organisation_valid: bool = False
    signatures: list[SignatureResult] = field(default_factory=list)
    reason_vi: str = ""  # the reason in Vietnamese


def _who(sig: SignatureResult) -> str:
    kind = {PERSON: "person", ORGANISATION: "organisation"}.get(sig.signer_kind, "signer")
    return f"{kind} {sig.subject}"


def _who_vi(sig: SignatureResult) -> str:
    kind = {PERSON: "cá nhân", ORGANISATION: "cơ quan, tổ chức"}.get(sig.signer_kind, "người ký")
    return f"{kind} {sig.subject}"


class Policy:
    def __init__(self, rules: list[PolicyRule], *, accept_unsigned: bool = False) -> None:
        self.rules = rules
        self.accept_unsigned = accept_unsigned

    def rule_for(self, document_type: str, direction: str) -> PolicyRule:
        for rule in self.rules:
            if rule.matches(document_type, direction):
                return rule
        return PolicyRule("(built-in)=organisation", None, "*", "organisation")

    def decide(self, files: list[FileResult], document_type: str, direction: str) -> Decision:
        rule = self.rule_for(document_type, direction)
        signatures = [sig for f in files for sig in f.signatures]
        main_name = next((f.name for f in files if f.kind != "p7s"), "")
        on_main = [s for s in signatures if s.file_name == main_name]
        decision = Decision(False, "", rule=rule.text, signatures=signatures)
        decision.personal_valid = any(s.valid and s.signer_kind == PERSON for s in on_main)
        decision.organisation_valid = any(
            s.valid and s.signer_kind == ORGANISATION for s in on_main
        )

        def reject(failed_rule: str, reason: str, reason_vi: str) -> Decision:
            decision.failed_rule, decision.reason = failed_rule, reason
            decision.reason_vi = reason_vi
            return decision

        # the readable-files rule first: no development shortcut lets an unreadable file through
        for f in files:
            if f.problem:
                return reject(
                    "readable-files",
                    f"{f.name}: {f.problem}",
                    f"{f.name}: tệp không đọc được hoặc không đúng loại ({f.problem})",
                )
        if not signatures and self.accept_unsigned:
            decision.accepted = True
            decision.reason = (
                "accepted WITHOUT signature verification: the document carries no signature and"
                " LIENTHONG_SIGNATURE_ACCEPT_UNSIGNED is on (development only)"
            )
            decision.reason_vi = (
                "chấp nhận KHÔNG kiểm tra chữ ký: văn bản không có chữ ký nào và"
                " LIENTHONG_SIGNATURE_ACCEPT_UNSIGNED đang bật (chỉ dùng khi phát triển)"
            )
            return decision
        if not files:
            return reject(
                "no-signed-file", "the document has no file to verify", "văn bản không có tệp nào"
            )
        for sig in signatures:
            if not sig.valid:
                return reject(
                    "signatures-valid",
                    f"{sig.file_name}: signature {sig.index} ({_who(sig)}) is not valid:"
                    f" {sig.reason}",
                    f"{sig.file_name}: chữ ký {sig.index} ({_who_vi(sig)}) không hợp lệ:"
                    f" {sig.reason_vi}",
                )
        if not signatures:
            return reject(
                "no-signed-file",
                f"{main_name}: carries no signature",
                f"{main_name}: không có chữ ký nào",
            )
        persons = [s for s in on_main if s.signer_kind == PERSON]
        organisations = [s for s in on_main if s.signer_kind == ORGANISATION]
        if not organisations:
            return reject(
                "organisation-signature-required",
                f"{main_name}: no valid organisation signature (rule {rule.text})",
                f"{main_name}: thiếu chữ ký số hợp lệ của cơ quan, tổ chức (quy tắc {rule.text})",
            )
        if rule.requirement != "organisation":
            if not persons:
                return reject(
                    "personal-signature-required",
                    f"{main_name}: no valid signature of the competent person (rule {rule.text})",
                    f"{main_name}: thiếu chữ ký số hợp lệ của người có thẩm quyền (quy tắc"
                    f" {rule.text})",
                )
            if rule.requirement == "person-then-organisation" and max(
                s.index for s in organisations
            ) < min(s.index for s in persons):
                return reject(
                    "organisation-signature-after-personal",
                    f"{main_name}: the organisation signed (signature"
                    f" {organisations[0].index}) before the person (signature"
                    f" {persons[0].index}); the organisation signs after the competent person",
                    f"{main_name}: cơ quan, tổ chức ký (chữ ký {organisations[0].index}) trước"
                    f" người có thẩm quyền (chữ ký {persons[0].index}); cơ quan, tổ chức phải ký"
                    " sau người có thẩm quyền",
                )
        for f in files:
            if f.kind == "p7s" or f.name == main_name:
                continue
            mine = [s for s in signatures if s.file_name == f.name]
            if not any(s.signer_kind == ORGANISATION for s in mine):
                return reject(
                    "appendix-organisation-signature-required",
                    f"{f.name}: an appendix without a valid organisation signature"
                    f" (sign it as a PDF or add {f.name}.p7s)",
                    f"{f.name}: phụ lục thiếu chữ ký số hợp lệ của cơ quan, tổ chức (ký trên"
                    f" PDF hoặc gửi kèm {f.name}.p7s)",
                )
        decision.accepted = True
        order = " then ".join(_who(s) for s in on_main)
        decision.reason = f"{len(signatures)} valid signature(s); {main_name}: {order}"
        order_vi = " rồi ".join(_who_vi(s) for s in on_main)
        decision.reason_vi = f"{len(signatures)} chữ ký hợp lệ; {main_name}: {order_vi}"
        return decision
