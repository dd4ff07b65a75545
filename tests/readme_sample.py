"""The README's sample output is the proof of concept's end-of-run table, made by running it.

    python tests/readme_sample.py           # print the table
    python tests/readme_sample.py --write   # put it in README.md, between its sample markers

``tests/test_readme.py`` runs the same function and fails when the README's copy is stale."""
from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CONFIG = ROOT / "configs" / "proof_of_concept.jsonc"
SAMPLE = re.compile(r"(<!-- sample: proof_of_concept -->\n```\n)(.*?)(```\n<!-- end sample -->)", re.S)


def fresh_table(output_dir: str | Path) -> str:
    """The proof of concept's table (the rows up to the first blank line), run into ``output_dir``."""
    sys.path.insert(0, str(ROOT))
    from erasure.execution.experiment import load_experiment
    from erasure.execution.runner import Runner

    experiment = load_experiment(CONFIG, [f'output.dir="{Path(output_dir).as_posix()}"', "output.writers=[]"])
    said: list[str] = []
    Runner(experiment, progress=False, out=said.append).run()
    table = next(text for text in said if text.startswith("rank "))
    return table.split("\n\n")[0].rstrip() + "\n"


def readme_table(text: str | None = None) -> str:
    match = SAMPLE.search(README.read_text() if text is None else text)
    if match is None:
        raise ValueError("README.md has no '<!-- sample: proof_of_concept -->' block")
    return match.group(2)


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as folder:
        table = fresh_table(folder)
    if "--write" in argv:
        text = README.read_text()
        readme_table(text)
        README.write_text(SAMPLE.sub(lambda m: m.group(1) + table + m.group(3), text))
    print(table, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
