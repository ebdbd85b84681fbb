import sys

from kuberds.cli import main

sys.exit(main())
