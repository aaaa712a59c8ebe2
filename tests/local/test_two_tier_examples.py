"""The documentation's examples name units of make run's two-tier province."""

from __future__ import annotations

from pathlib import Path

import pytest

from lienthong_local.sample import sample_units
from lienthong_testing.two_tier_examples import main, two_tier

ROOT = Path(__file__).resolve().parents[2]
# the files whose examples run against make run (operations.md's transition names H23 on purpose)
EXAMPLES = [
    ROOT / "README.md",
    ROOT / "docs" / "cli.md",
    *sorted((ROOT / "docs" / "examples").glob("*.edxml")),
]
CURRENT = {unit.code for unit in sample_units("two-tier") if not unit.valid_until}


def test_the_substitution_moves_codes_scopes_and_names() -> None:
    three_tier = (
        '{"unit_codes": ["000.01.00.H23", "000.00.31.H23"]} '
        '{\\"ancestor_code\\": \\"000.00.31.H23\\"} hoa@sotc.hoabinh.gov.vn '
        "<edXML:OrganName>UBND xã Bắc Hà</edXML:OrganName>"
    )
    assert two_tier(three_tier) == (
        '{"unit_codes": ["000.01.00.H43", "000.00.101.H43"]} '
        '{\\"ancestor_code\\": \\"000.00.00.H43\\"} hoa@sotc.phutho.gov.vn '
        "<edXML:OrganName>UBND phường Tân Hòa</edXML:OrganName>"
    )
    assert two_tier(two_tier(three_tier)) == two_tier(three_tier)
    for code in ("000.00.00.H43", "000.01.00.H43", "000.00.101.H43"):
        assert code in CURRENT


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_the_examples_are_already_two_tier(path: Path) -> None:
    # a merge that brings back a Hòa Bình code fails here: re-run the module on the file
    text = path.read_text(encoding="utf-8")
    assert two_tier(text) == text, f"python -m lienthong_testing.two_tier_examples {path}"
    assert ".H23" not in text


def test_the_command_rewrites_only_what_changes(tmp_path: Path) -> None:
    old = tmp_path / "old.md"
    old.write_text("lienthong --unit 000.00.00.H23 inbox list\n", encoding="utf-8")
    assert main([str(old)]) == 0
    assert old.read_text(encoding="utf-8") == "lienthong --unit 000.00.00.H43 inbox list\n"
    assert main([]) == 2
