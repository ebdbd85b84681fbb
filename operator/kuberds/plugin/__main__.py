"""`python3 -m kuberds.plugin`: what the krew shim runs."""

import sys

from kuberds.plugin.cli import main

sys.exit(main())
