# Shared helpers for hack/ scripts (sourced, not run).
# The cache key is the pinned versions plus a hash of the wrapper go.sum files, so a
# change of pin builds into a fresh directory and old builds are never half-reused.
kuberds_cache_root() { echo "${KUBERDS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kuberds}"; }
kuberds_bin_dir() {
  local here key
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  key=$(cat "$here/versions.env" "$here"/tools/*/go.sum | sha256sum | cut -c1-12)
  echo "$(kuberds_cache_root)/$KUBERNETES_VERSION-$key/bin"
}
