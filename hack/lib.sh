# Shared helpers for hack/ scripts (sourced, not run).
kuberds_cache_root() { echo "${KUBERDS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kuberds}"; }
# One directory of binaries; each tool group records what it was built from in a stamp
# (see build-binaries.sh), so a changed pin rebuilds that group only.
kuberds_bin_dir() { echo "$(kuberds_cache_root)/bin"; }
