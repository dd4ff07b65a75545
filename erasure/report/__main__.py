"""``python -m erasure.report``."""
import sys

from erasure.report import main

sys.exit(main())
