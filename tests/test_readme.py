"""The README fits on a page, holds the two commands, and its sample output is what a run prints."""
from __future__ import annotations

from readme_sample import README, fresh_table, readme_table


def test_the_readme_fits_on_a_page_and_holds_the_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    assert "python main.py configs/proof_of_concept.jsonc\n" in text and "python -m pytest -q\n" in text


def test_the_sample_output_is_what_the_proof_of_concept_prints(tmp_path):
    assert readme_table() == fresh_table(tmp_path), "stale: run python tests/readme_sample.py --write"
