"""Every number in the tables of BENCHMARKS.md must be in a results file: list those that are not.

    .venv/bin/python bench/check_benchmarks.py [--doc BENCHMARKS.md] [--results bench/results]

Reads each table row of the document (not its header row, nor its first column, which names the figure
and may carry settings such as "max delay 2 ms") and takes every number from the other cells, leaving
out what sits in `code spans`, dates (2013-06-30), numbers glued to letters (p99, H100, 10M) and targets
(a number after >=, <=, <, >, "≥" or "≤"). A number counts as found when some number in the results
files equals it at the precision shown: 7,745 matches 7744.5, 0.35 matches 0.3503, 2.00 matches 2.0,
25 % matches 0.25. When a section names results files (`bench/results/NAME.json`) its numbers are
looked up in those files only, otherwise in all of them. Prints the numbers not found, by section and
row, and exits 1 if there is any; cells still marked TODO are listed too, without failing the check.
A tool for whoever edits the document; no test runs it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

CODE = re.compile(r"`[^`]*`")
DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
TARGET = re.compile(r"(?:≥|≤|>=|<=|<|>)\s*[−+-]?[\d.,]+\s*×?")
RESULTS_REF = re.compile(r"bench/results/([\w.-]+\.json)")
# A number not glued to a letter, digit or dot on either side; thousands separators and a sign allowed.
NUMBER = re.compile(r"(?<![\w.,])([−+-]?)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\w.]|,\d)(\s*%)?")


@dataclass(frozen=True)
class Figure:
    section: str
    row: str
    text: str
    value: Decimal
    places: int  # digits shown after the point


def numbers_in(cell: str) -> list[tuple[str, Decimal, int]]:
    """The numbers of one table cell, as (text, value, decimal places shown)."""
    cell = TARGET.sub(" ", DATE.sub(" ", CODE.sub(" ", cell)))
    out = []
    for m in NUMBER.finditer(cell):
        sign, whole, frac, percent = m.group(1), m.group(2), m.group(3) or "", m.group(4)
        value = Decimal(("-" if sign in ("-", "−") else "") + whole.replace(",", "") + frac)
        places = len(frac) - 1 if frac else 0
        if percent:
            value, places = value / 100, places + 2
        out.append((m.group(0).strip(), value, places))
    return out


def table_figures(doc: str) -> dict[str, list[Figure]]:
    """Per section (its `##` heading), the numbers of its tables' body cells, first column left out."""
    sections: dict[str, list[Figure]] = {}
    section, in_table, header_done = "(top)", False, False
    for line in doc.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        if not line.lstrip().startswith("|"):
            in_table = False
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not in_table:  # the header row
            in_table, header_done = True, False
            continue
        if not header_done and all(re.fullmatch(r":?-{3,}:?", c) for c in cells):
            header_done = True
            continue
        for cell in cells[1:]:
            for text, value, places in numbers_in(cell):
                sections.setdefault(section, []).append(Figure(section, cells[0], text, value, places))
    return sections


def walk(node: Any) -> list[float]:
    """Every number in a JSON document, numeric strings and numeric keys included."""
    if isinstance(node, bool):
        return []
    if isinstance(node, (int, float)):
        return [float(node)]
    if isinstance(node, dict):
        return [n for k, v in node.items() for n in walk(k) + walk(v)]
    if isinstance(node, list):
        return [n for v in node for n in walk(v)]
    if isinstance(node, str):
        try:
            return [float(node)]
        except ValueError:
            return []
    return []


def found(fig: Figure, pool: list[float]) -> bool:
    """Whether some result equals the figure at the precision it is shown with."""
    half = Decimal(5) / Decimal(10) ** (fig.places + 1)
    lo, hi = float(fig.value - half) - 1e-9, float(fig.value + half) + 1e-9
    return any(lo <= n <= hi for n in pool)


def todo_rows(doc: str) -> list[str]:
    """Table rows (section and first cell) that still hold a TODO cell."""
    out, section = [], "(top)"
    for line in doc.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.lstrip().startswith("|") and "TODO" in cells[1:]:
            out.append(f"  {section} | {cells[0][:70]}")
    return out


def section_files(doc: str) -> dict[str, list[str]]:
    """The results files each section names."""
    names: dict[str, list[str]] = {}
    section = "(top)"
    for line in doc.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        names.setdefault(section, [])
        for name in RESULTS_REF.findall(line):
            if name not in names[section]:
                names[section].append(name)
    return names


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--doc", type=Path, default=ROOT / "BENCHMARKS.md")
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    doc = args.doc.read_text(encoding="utf-8")
    pools = {p.name: walk(json.loads(p.read_text(encoding="utf-8"))) for p in sorted(args.results.glob("*.json"))}
    everything = [n for pool in pools.values() for n in pool]
    files = section_files(doc)
    missing: list[str] = []
    checked = 0
    for section, figures in table_figures(doc).items():
        named = [f for f in files.get(section, []) if f in pools]
        unknown = [f for f in files.get(section, []) if f not in pools]
        pool = [n for f in named for n in pools[f]] if named else everything
        for fig in figures:
            checked += 1
            if not found(fig, pool):
                where = ", ".join(named) if named else "any results file"
                missing.append(f"  {section} | {fig.row[:70]} | {fig.text}  (not in {where})")
        if unknown:
            missing.append(f"  {section}: names {', '.join(unknown)}, which {args.results} lacks")
    print(f"{checked} numbers in the tables of {args.doc.name}, checked against {len(pools)} results files; "
          f"{len(missing)} not found")
    for line in missing:
        print(line)
    todo = todo_rows(doc)
    if todo:
        print(f"{len(todo)} rows still TODO (not counted as missing):")
        print("\n".join(todo))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
