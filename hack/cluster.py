#!/usr/bin/env python3
"""A real local Kubernetes for kuberds' tests and demos: `python3 hack/cluster.py --help`.

    python3 hack/cluster.py up               # build (cached) and start, wait until healthy
    python3 hack/cluster.py up --real-nodes  # the same plus two real nodes (root; KUBERDS_REAL_NODES=1)
    python3 hack/cluster.py status           # what runs, where the logs and kubeconfig are
    python3 hack/cluster.py down             # stop what `up` started, remove the state

The code is the package hack/localcluster/ (standard library only).
"""

import sys

from localcluster.cli import main

if __name__ == "__main__":
    sys.exit(main())
