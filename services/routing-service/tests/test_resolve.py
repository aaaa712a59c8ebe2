"""Recipient resolution and registry rules: domain logic, no I/O (the sample province)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lienthong.common.v1.common_pb2 import DocumentSummary, Recipients, RecipientScope, UnitLevel
from lienthong.routing.v1.routing_service_pb2 import Unit
from lienthong_kit.errors import InvalidArgument, PoisonEvent
from lienthong_local.sample import PROVINCE, sample_units
from routing_service.consumers import _document_date
from routing_service.index import UnitIndex
from routing_service.registry import validate_unit
from routing_service.resolve import resolve

FINANCE = "000.01.00.H23"
FOREIGN_AFFAIRS = "000.02.00.H23"
CITY = "000.00.31.H23"  # Thành phố Hòa Bình, 2020 form H23.148
CITY_COMMUNE = "000.01.31.H23"
DISTRICT_32 = "000.00.32.H23"
DAY = "2026-11-20"
SAMPLE = sample_units()


def level_codes(level: int, parent: str | None = None) -> list[str]:
    return sorted(
        u.code for u in SAMPLE if u.level == level and (parent is None or u.parent_code == parent)
    )


@pytest.fixture
def index() -> UnitIndex:
    index = UnitIndex()
    for unit in SAMPLE:
        index.apply(unit, 1)
    return index


def close(index: UnitIndex, code: str, *, on: str, successor: str = "") -> None:
    unit = Unit()
    unit.CopyFrom(index.get(code) or Unit())
    unit.active = False
    unit.valid_until = on
    unit.successor_code = successor
    index.apply(unit, 2)


def scope(ancestor: str = "", level: int = 0, exclude: tuple[str, ...] = ()) -> RecipientScope:
    return RecipientScope(ancestor_code=ancestor, level=level, exclude_codes=list(exclude))


def run(index: UnitIndex, *, codes: tuple[str, ...] = (), scopes: tuple[RecipientScope, ...] = (),
        sender: str = PROVINCE, as_of: str = DAY) -> Any:  # fmt: skip
    return resolve(
        index,
        sender_code=sender,
        recipients=Recipients(unit_codes=list(codes), scopes=list(scopes)),
        as_of=as_of,
    )


def test_sample_province_has_the_expected_shape() -> None:
    counts = {level: len(level_codes(level)) for level in (1, 2, 3, 4)}
    assert counts == {1: 1, 2: 20, 3: 10, 4: 151}
    assert len({u.code_2020 for u in SAMPLE}) == len(SAMPLE)
    seen: set[str] = set()
    for unit in SAMPLE:  # parents before children
        assert not unit.parent_code or unit.parent_code in seen
        seen.add(unit.code)


def test_explicit_codes_keep_their_order_once_each(index: UnitIndex) -> None:
    result = run(index, codes=(CITY, FINANCE, CITY, "H23.01", FINANCE))
    assert result.unit_codes == [CITY, FINANCE]
    assert result.bounces == []


def test_the_sender_never_receives(index: UnitIndex) -> None:
    result = run(index, codes=(FINANCE, PROVINCE), scopes=(scope(level=1),), sender=PROVINCE)
    assert result.unit_codes == [FINANCE]


def test_the_sender_named_in_the_2020_form_is_dropped_too(index: UnitIndex) -> None:
    result = run(index, scopes=(scope(level=UnitLevel.UNIT_LEVEL_DEPARTMENT),), sender="H23.01")
    assert FINANCE not in result.unit_codes
    assert len(result.unit_codes) == 19


def test_unknown_code_bounces(index: UnitIndex) -> None:
    result = run(index, codes=("999.99.99.H23", "999.99.99.H99", FINANCE))
    assert result.unit_codes == [FINANCE]
    assert result.bounces == [
        ("999.99.99.H23", "unknown recipient 999.99.99.H23: no such unit in the registry"),
        (
            "999.99.99.H99",
            "unknown recipient 999.99.99.H99: no such unit in the registry; it is outside the"
            " province: register it as an external agency to reach it through the national axis",
        ),
    ]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(scope(), [u.code for u in SAMPLE if u.code != PROVINCE], id="whole-province"),
        pytest.param(
            scope(level=UnitLevel.UNIT_LEVEL_DEPARTMENT),
            level_codes(UnitLevel.UNIT_LEVEL_DEPARTMENT),
            id="all-departments",
        ),
        pytest.param(
            scope(level=UnitLevel.UNIT_LEVEL_COMMUNE),
            level_codes(UnitLevel.UNIT_LEVEL_COMMUNE),
            id="every-commune",
        ),
        pytest.param(
            scope(CITY, UnitLevel.UNIT_LEVEL_COMMUNE),
            level_codes(UnitLevel.UNIT_LEVEL_COMMUNE, CITY),
            id="communes-of-a-district",
        ),
        pytest.param(
            scope("H23.148"),
            level_codes(UnitLevel.UNIT_LEVEL_COMMUNE, CITY),
            id="under-a-district-in-2020-form",
        ),
    ],
)
def test_scopes_resolve_in_code_order(
    index: UnitIndex, given: RecipientScope, expected: list[str]
) -> None:
    result = run(index, scopes=(given,))
    assert result.unit_codes == sorted(expected)
    assert result.bounces == []


def test_exclusions_leave_out_the_unit_and_everything_below_it(index: UnitIndex) -> None:
    result = run(index, scopes=(scope(level=UnitLevel.UNIT_LEVEL_COMMUNE, exclude=(CITY,)),))
    communes = level_codes(UnitLevel.UNIT_LEVEL_COMMUNE)
    city = set(level_codes(UnitLevel.UNIT_LEVEL_COMMUNE, CITY))
    assert result.unit_codes == [c for c in communes if c not in city]


def test_an_explicit_code_is_delivered_even_if_a_scope_excludes_it(index: UnitIndex) -> None:
    departments = scope(level=UnitLevel.UNIT_LEVEL_DEPARTMENT, exclude=(FINANCE,))
    result = run(index, codes=(FINANCE,), scopes=(departments,))
    assert result.unit_codes[0] == FINANCE
    assert result.unit_codes.count(FINANCE) == 1
    assert len(result.unit_codes) == 20


def test_overlapping_scopes_deliver_once(index: UnitIndex) -> None:
    result = run(
        index,
        codes=(CITY_COMMUNE,),
        scopes=(scope(CITY), scope(level=UnitLevel.UNIT_LEVEL_COMMUNE)),
    )
    assert len(result.unit_codes) == len(set(result.unit_codes)) == 151  # every commune
    assert result.unit_codes[0] == CITY_COMMUNE


def test_closed_recipient_bounces_naming_its_successor(index: UnitIndex) -> None:
    close(index, FOREIGN_AFFAIRS, on="2025-07-01", successor="000.04.00.H23")
    result = run(index, codes=(FOREIGN_AFFAIRS,))
    assert result.unit_codes == []
    assert result.bounces == [
        (
            FOREIGN_AFFAIRS,
            f"recipient {FOREIGN_AFFAIRS} was closed on 2025-07-01; its successor is "
            "000.04.00.H23 (Văn phòng Ủy ban nhân dân tỉnh)",
        )
    ]


def test_closed_recipient_is_delivered_to_for_a_day_before_it_closed(index: UnitIndex) -> None:
    close(index, FOREIGN_AFFAIRS, on="2025-07-01", successor="000.04.00.H23")
    assert run(index, codes=(FOREIGN_AFFAIRS,), as_of="2025-06-30").unit_codes == [FOREIGN_AFFAIRS]


def test_inactive_units_bounce_when_named_and_are_skipped_in_scopes(index: UnitIndex) -> None:
    unit = Unit()
    unit.CopyFrom(index.get(FINANCE) or Unit())
    unit.active = False
    index.apply(unit, 2)
    named = run(index, codes=(FINANCE,))
    assert named.bounces == [(FINANCE, f"recipient {FINANCE} is not active")]
    scoped = run(index, scopes=(scope(level=UnitLevel.UNIT_LEVEL_DEPARTMENT),))
    assert FINANCE not in scoped.unit_codes
    assert scoped.bounces == []


def test_scope_under_a_closed_district_is_refused_for_new_documents(index: UnitIndex) -> None:
    close(index, DISTRICT_32, on="2025-07-01")
    result = run(index, scopes=(scope(DISTRICT_32, UnitLevel.UNIT_LEVEL_COMMUNE),))
    assert result.unit_codes == []
    assert result.bounces == [
        (
            DISTRICT_32,
            f"scope under {DISTRICT_32} refused: it was closed on 2025-07-01; it has no successor",
        )
    ]


def test_scope_under_a_closed_district_resolves_for_history(index: UnitIndex) -> None:
    close(index, DISTRICT_32, on="2025-07-01")
    result = run(index, scopes=(scope(DISTRICT_32),), as_of="2025-06-30")
    assert result.unit_codes == level_codes(UnitLevel.UNIT_LEVEL_COMMUNE, DISTRICT_32)


def test_scope_under_an_unknown_unit_is_refused(index: UnitIndex) -> None:
    result = run(index, scopes=(scope("000.00.99.H23"),))
    assert result.unit_codes == []
    assert [code for code, _ in result.bounces] == ["000.00.99.H23"]


def test_a_newer_revision_wins_and_an_older_one_is_ignored(index: UnitIndex) -> None:
    renamed = Unit()
    renamed.CopyFrom(index.get(FINANCE) or Unit())
    renamed.name = "Sở Tài chính tỉnh Hòa Bình"
    assert index.apply(renamed, 5)
    stale = Unit()
    stale.CopyFrom(renamed)
    stale.name = "stale"
    assert not index.apply(stale, 4)
    assert (index.get(FINANCE) or Unit()).name == "Sở Tài chính tỉnh Hòa Bình"


def department(**fields: Any) -> Unit:
    base: dict[str, Any] = {
        "code": FINANCE,
        "name": "Sở Tài chính",
        "level": UnitLevel.UNIT_LEVEL_DEPARTMENT,
        "parent_code": PROVINCE,
        "active": True,
    }
    return Unit(**{**base, **fields})


PROVINCE_UNIT = Unit(code=PROVINCE, name="UBND", level=UnitLevel.UNIT_LEVEL_PROVINCE)
COMMUNE_UNIT = Unit(code=CITY_COMMUNE, name="xã", level=UnitLevel.UNIT_LEVEL_COMMUNE)


@pytest.mark.parametrize(
    ("fields", "parent", "field"),
    [
        pytest.param({"code": "sở 1"}, PROVINCE_UNIT, "unit.code", id="malformed-code"),
        pytest.param({"code_2020": "h23-1"}, PROVINCE_UNIT, "unit.code_2020", id="bad-2020"),
        pytest.param({"name": " "}, PROVINCE_UNIT, "unit.name", id="no-name"),
        pytest.param(
            {"level": UnitLevel.UNIT_LEVEL_UNSPECIFIED}, PROVINCE_UNIT, "unit.level", id="no-level"
        ),
        pytest.param({"parent_code": ""}, None, "unit.parent_code", id="no-parent"),
        pytest.param({}, None, "unit.parent_code", id="unknown-parent"),
        pytest.param({}, COMMUNE_UNIT, "unit.parent_code", id="department-under-a-commune"),
        pytest.param(
            {"level": UnitLevel.UNIT_LEVEL_PROVINCE, "parent_code": PROVINCE},
            PROVINCE_UNIT,
            "unit.parent_code",
            id="province-with-parent",
        ),
        pytest.param(
            {"valid_until": "2025-13-01"}, PROVINCE_UNIT, "unit.valid_until", id="bad-day"
        ),
        pytest.param(
            {"valid_from": "2025-07-01", "valid_until": "2025-06-30"},
            PROVINCE_UNIT,
            "unit.valid_until",
            id="closed-before-it-opened",
        ),
        pytest.param({"successor_code": FINANCE}, PROVINCE_UNIT, "unit.successor_code", id="self"),
    ],
)
def test_unit_rules_name_the_field(fields: dict[str, Any], parent: Unit | None, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_unit(department(**fields), parent=parent)
    assert [v.field for v in info.value.violations] == [field]


def test_a_valid_unit_passes() -> None:
    validate_unit(department(valid_from="2020-01-01"), parent=PROVINCE_UNIT)


def test_csv_rows_keep_their_line_numbers_and_local_problems(tmp_path: Path) -> None:
    # the registry file reader is the CLI's (`lienthong units import`)
    from lienthong_cli.units_file import read_units

    path = tmp_path / "units.csv"
    path.write_text(
        "code,code_2020,name,level,parent_code,active,contact_email\n"
        f"{FINANCE},H23.01,Sở Tài chính,department,{PROVINCE},true,vt@stc.vn\n"
        f"000.01.99.H23,,Xã,hamlet,{PROVINCE},maybe,\n",
        "utf-8",
    )
    rows = read_units(path)
    assert [row.where for row in rows] == ["line 2", "line 3"]
    assert rows[0].unit.level == UnitLevel.UNIT_LEVEL_DEPARTMENT
    assert rows[0].unit.contacts[0].email == "vt@stc.vn"
    assert rows[0].problems == []
    assert [p.split(":")[0] for p in rows[1].problems] == ["level", "active"]


@pytest.mark.parametrize("recipient", [FINANCE, CITY_COMMUNE, "H23.148"])
def test_delivery_id_is_the_uuid5_of_document_and_recipient(recipient: str) -> None:
    import uuid

    from routing_service.consumers import delivery_id

    namespace = uuid.UUID("0b0f5d1e-7a43-4e0e-a0c4-5b7f1f6d2c11")
    assert delivery_id("doc-1", recipient) == str(uuid.uuid5(namespace, f"doc-1/{recipient}"))


GOVERNMENT_OFFICE = "000.00.00.G01"


def external(index: UnitIndex, code: str = GOVERNMENT_OFFICE, parent: str = "") -> Unit:
    unit = Unit(code=code, name="Văn phòng Chính phủ", parent_code=parent, active=True,
                external=True)  # fmt: skip
    index.apply(unit, 1)
    return unit


def test_an_external_agency_named_explicitly_goes_through_the_axis(index: UnitIndex) -> None:
    external(index)
    result = run(index, codes=(GOVERNMENT_OFFICE, FINANCE))
    assert result.unit_codes == [GOVERNMENT_OFFICE, FINANCE]
    assert result.via_axis == {GOVERNMENT_OFFICE}
    assert result.bounces == []


def test_scopes_never_include_an_external_agency(index: UnitIndex) -> None:
    # an external agency whose national parent happens to share a code with the province
    external(index, parent=PROVINCE)
    whole = run(index, scopes=(scope(),))
    below = run(index, scopes=(scope(PROVINCE),), sender=FINANCE)
    assert GOVERNMENT_OFFICE not in whole.unit_codes
    assert GOVERNMENT_OFFICE not in below.unit_codes
    assert whole.via_axis == below.via_axis == set()
    refused = run(index, scopes=(scope(GOVERNMENT_OFFICE),))
    assert refused.unit_codes == []
    assert refused.bounces[0][0] == GOVERNMENT_OFFICE
    assert "external agency" in refused.bounces[0][1]


def test_an_external_agency_needs_no_level_and_no_parent_in_the_registry() -> None:
    validate_unit(
        Unit(
            code=GOVERNMENT_OFFICE,
            name="Văn phòng Chính phủ",
            parent_code="000.00.00.G00",
            external=True,
        ),
        parent=None,
    )
    with pytest.raises(InvalidArgument) as refused:
        validate_unit(
            Unit(
                code=GOVERNMENT_OFFICE,
                name="Văn phòng Chính phủ",
                external=True,
                level=UnitLevel.UNIT_LEVEL_PROVINCE,
            ),
            parent=None,
        )
    assert [v.field for v in refused.value.violations] == ["unit.level"]


def test_a_submission_time_outside_the_calendar_is_poison_not_a_retry() -> None:
    document = DocumentSummary(document_id="doc-far")
    document.submitted_at.seconds = 2**62  # as the topic fuzzer sends it
    with pytest.raises(PoisonEvent, match=r"document\.submitted_at is out of range"):
        _document_date(document)
