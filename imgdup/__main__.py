"""`python -m imgdup` -> the command line."""

import sys

from imgdup.cli import main

sys.exit(main())
