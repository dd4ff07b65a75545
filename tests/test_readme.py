"""The README fits on a page, holds the two commands, and its sample output is what a run prints."""
from __future__ import annotations

import re

from readme_sample import README, fresh_table, readme_table

NUMBER = re.compile(r"^[+-]?\d+\.\d+$")
TOLERANCE = 0.006  # two predictions' worth of digits' 360 test images: other CPUs may round differently


def tokens(table: str) -> list[str]:
    return table.replace("*", " ").replace("[", " ").replace("]", " ").replace(",", " ").split()


def same_table(printed: str, fresh: str) -> bool:
    """Equal text, numbers within :data:`TOLERANCE` (best-method marks aside)."""
    a, b = tokens(printed), tokens(fresh)
    return len(a) == len(b) and all(
        abs(float(x) - float(y)) <= TOLERANCE if NUMBER.match(x) and NUMBER.match(y) else x == y for x, y in zip(a, b))


def test_the_readme_fits_on_a_page_and_holds_the_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    assert "python main.py configs/proof_of_concept.jsonc\n" in text and "python -m pytest -q\n" in text


def test_the_sample_output_is_what_the_proof_of_concept_prints(tmp_path):
    fresh = fresh_table(tmp_path)
    assert same_table(readme_table(), fresh), f"stale: run python tests/readme_sample.py --write\n{fresh}"


def test_the_comparison_catches_a_stale_value_and_forgives_rounding():
    table = "ref   GoldModel  0.942  [0.82, 1.00]\n1     NegGrad    0.035*"
    assert same_table(table, table.replace("0.942", "0.945").replace("0.035*", "0.035"))
    assert not same_table(table, table.replace("0.942", "0.957")), "the README's old, stale UMIA value"
    assert not same_table(table, table.replace("NegGrad", "FineTuning"))
