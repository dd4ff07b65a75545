"""Run an unlearning benchmark: ``python main.py configs/proof_of_concept.jsonc``."""
import sys

from erasure.cli import main

if __name__ == "__main__":
    sys.exit(main())
