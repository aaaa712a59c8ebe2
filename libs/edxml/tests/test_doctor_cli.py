"""The doctor command: exit code 0/1, human and JSON output, standard input."""

from __future__ import annotations

import json
import subprocess
import sys
from io import BytesIO, StringIO
from pathlib import Path

from lienthong_edxml.__main__ import main

DATA = Path(__file__).parent / "data"


def test_a_fine_package_exits_0() -> None:
    out = StringIO()

    code = main(["doctor", str(DATA / "golden" / "status_03.edxml")], out=out)

    assert code == 0
    assert out.getvalue().endswith(": OK\n")


def test_a_bad_package_exits_1_listing_every_problem_in_json() -> None:
    out = StringIO()
    path = DATA / "hostile" / "bad_fields.edxml"

    code = main(["doctor", "--json", "--today", "2026-12-01", str(path)], out=out)

    assert code == 1
    report = json.loads(out.getvalue())
    assert report["ok"] is False
    assert len(report["problems"]) == 7
    assert report["problems"][0] == {
        "xpath": "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/From/OrganId",
        "code": "bad-organ-id",
        "message_vi": "Mã định danh 'ubnd tinh' không hợp lệ (chữ A-Z, số 0-9 và dấu chấm,"
        " tối đa 35 ký tự)",
        "message_en": "The identifier code 'ubnd tinh' is invalid (A-Z, 0-9 and dots, at most"
        " 35 characters)",
    }


def test_standard_input_and_the_human_report() -> None:
    out = StringIO()
    data = (DATA / "hostile" / "xxe.edxml").read_bytes()

    code = main(["doctor", "-"], stdin=BytesIO(data), out=out)

    assert code == 1
    assert "[doctype-refused]" in out.getvalue()
    assert "  vi: " in out.getvalue()


def test_a_missing_file_exits_2() -> None:
    assert main(["doctor", str(DATA / "absent.edxml")], out=StringIO()) == 2


def test_runs_as_a_module() -> None:
    path = DATA / "hostile" / "not_xml.edxml"

    result = subprocess.run(
        [sys.executable, "-m", "lienthong_edxml", "doctor", "--json", str(path)],
        capture_output=True,
        check=False,
    )

    assert result.returncode == 1
    assert json.loads(result.stdout)["problems"][0]["code"] == "not-xml"
