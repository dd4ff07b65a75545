"""``python -m erasure COMMAND ...``: the same as the ``erasure`` command."""
import sys

from erasure.cli import console

sys.exit(console())
