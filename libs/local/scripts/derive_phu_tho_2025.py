"""Derive phu_tho_2025.csv (the sample two-tier province) from the published packages.

    uv run --no-project --with vietnam-provinces==2025.10.1 --with vietnamadminunits==1.0.4 \
        python libs/local/scripts/derive_phu_tho_2025.py > \
        libs/local/src/lienthong_local/data/phu_tho_2025.csv

One row per commune or ward of today's Phú Thọ: its code and name as vietnam-provinces
2025.10.1 ships them, and the codes of the old (before 1 July 2025) communes that went into
it, in whole or in part, from vietnamadminunits' official mapping (converter_2025.json, keyed
by names; resolved to codes through its own dataset.db). Provenance and licences:
docs/decisions/0301-two-tier-sample-data.md.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import sys
import unicodedata
from importlib.resources import as_file, files

PROVINCE_CODE = 25
PROVINCE_KEY = "tinhphutho"
OLD_PROVINCES = {"17", "25", "26"}  # Hòa Bình, Phú Thọ, Vĩnh Phúc


def bare(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.replace("Đ", "D").replace("đ", "d"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def main() -> None:
    data = files("vietnamadminunits").joinpath("data")
    mapping = json.loads(data.joinpath("converter_2025.json").read_text("utf-8"))
    merged = sorted(mapping["DICT_PROVINCE"][PROVINCE_KEY])
    if merged != ["tinhhoabinh", "tinhphutho", "tinhvinhphuc"]:
        raise SystemExit(f"Phú Thọ is made of {merged} in this version of the mapping")
    with as_file(data.joinpath("dataset.db")) as path:
        db = sqlite3.connect(path)
        old_codes = {
            f"{p}_{d}_{w}": int(code)
            for p, d, w, code in db.execute(
                "select provinceKey, districtKey, wardKey, wardCode from admin_units_legacy"
                " where provinceCode in (?, ?, ?)",
                sorted(OLD_PROVINCES),
            )
        }
        new_names: dict[str, str] = dict(
            db.execute(
                "select wardKey, ward from admin_units where provinceCode = ?",
                (f"{PROVINCE_CODE:02d}",),
            )
        )
    divisions = json.loads(
        files("vietnam_provinces").joinpath("data/nested-divisions.json").read_text("utf-8")
    )
    province = next(p for p in divisions if p["code"] == PROVINCE_CODE)
    new_by_name = {bare(w["name"]): w for w in province["wards"]}

    parts: dict[str, set[int]] = {key: set() for key in new_names}
    for new_key, olds in mapping["DICT_PROVINCE_WARD_NO_DIVIDED"][PROVINCE_KEY].items():
        parts[new_key].update(old_codes[old] for old in olds)
    for old, news in mapping["DICT_PROVINCE_WARD_DIVIDED"][PROVINCE_KEY].items():
        for new in news:
            parts[new["newWardKey"]].add(old_codes[old])

    covered = set().union(*parts.values())
    missing = sorted(set(old_codes.values()) - covered)
    if missing:
        raise SystemExit(f"old communes with no successor: {missing}")

    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["code", "name", "old_codes"])
    rows = []
    for key, olds in parts.items():
        ward = new_by_name[bare(new_names[key])]
        rows.append((ward["code"], unicodedata.normalize("NFC", ward["name"]), sorted(olds)))
    for code, name, olds in sorted(rows):
        out.writerow([f"{code:05d}", name, " ".join(f"{o:05d}" for o in olds)])


if __name__ == "__main__":
    main()
