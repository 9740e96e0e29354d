"""`python -m modeldeploy_operator` (see cli.py)."""

import sys

from .cli import main

sys.exit(main())
