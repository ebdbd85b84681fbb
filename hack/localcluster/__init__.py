"""The local Kubernetes of hack/cluster.py, one module per concern (see cli.py for the usage).

Standard library only: it runs with the system python3 before any virtualenv exists.
"""
