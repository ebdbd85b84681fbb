#!/usr/bin/env bash
# `make test` (after lint): every test, in tiers side by side. Most of a tier's time is waiting
# on real things (failovers, archive timeouts, backups, the operator's passes), not on the
# machine's two cores (a serial run kept them a quarter busy):
#   - unit and control-plane tests (`-m "not dataplane"`), on the local kwok cluster, with the
#     operator the tests start;
#   - data-plane tests (`-m dataplane`: real PostgreSQL/Patroni, MariaDB, Redis, Memcached and
#     SeaweedFS processes) in groups of about equal length (DATAPLANE_GROUPS; modules named in
#     none run in the last), each on a kwok-only cluster of its own (state in
#     `<cluster dir>-dataplane-N`, every port shifted by 500 + 100·N), so the control-plane
#     tests' operator never sees the objects they write, and each group its own S3 server.
# A data-plane group's lines are prefixed "[data-plane N] ". With arguments (make test
# PYTEST_ARGS=...) or another cluster (KUBERDS_TEST_KUBECONFIG), one pytest runs them all.
# Exits non-zero if any tier fails; no data-plane cluster outlives the script.
set -uo pipefail
cd "$(dirname "$0")/.."
pytest=${VENV:-.venv}/bin/pytest
if [ $# -gt 0 ] || [ -n "${KUBERDS_TEST_KUBECONFIG:-}" ]; then
  exec "$pytest" --durations=15 "$@" # another cluster has one API server for every tier
fi

# From the modules' times in a run (printed at its end): test_backup.py alone is 400 s.
DATAPLANE_GROUPS=(
  "test_backup.py"
  "test_mariadb_pitr.py test_ha.py test_replica.py test_tls.py"
)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/kuberds
cluster_dir=${KUBERDS_CLUSTER_DIR:-$cache/cluster}
began=$SECONDS
pids=()
groups=$((${#DATAPLANE_GROUPS[@]} + 1))

in_group_cluster() { # N command...: run it with group N's cluster as the local cluster
  local n=$1
  shift
  KUBERDS_CLUSTER_DIR=$cluster_dir-dataplane-$n KUBERDS_CLUSTER_PORT_OFFSET=$((500 + 100 * n)) "$@"
}

stop_groups() {
  local n
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null && kill -- -"$pid" 2>/dev/null
  done
  wait 2>/dev/null
  for ((n = 1; n <= groups; n++)); do
    in_group_cluster "$n" python3 hack/cluster.py down >/dev/null 2>&1
  done
}
trap stop_groups EXIT
trap 'exit 130' INT TERM

group_selection() { # N: the pytest arguments choosing group N's modules
  local n=$1 module
  if [ "$n" -le "${#DATAPLANE_GROUPS[@]}" ]; then
    for module in ${DATAPLANE_GROUPS[$((n - 1))]}; do echo "tests/dataplane/$module"; done
  else
    echo tests/dataplane
    for module in ${DATAPLANE_GROUPS[*]}; do echo "--ignore=tests/dataplane/$module"; done
  fi
}

run_group() { # N
  local n=$1
  mapfile -t selection < <(group_selection "$n")
  in_group_cluster "$n" env PYTHONUNBUFFERED=1 "$pytest" -m dataplane --durations=10 -p no:cacheprovider \
    "${selection[@]}" 2>&1 | sed -u "s/^/[data-plane $n] /"
  return "${PIPESTATUS[0]}"
}

echo "==> data-plane tests: $groups groups beside the unit and control-plane tests"
set -m # each group in its own process group: stopping it stops pytest and every server it started
for ((n = 1; n <= groups; n++)); do
  run_group "$n" &
  pids+=($!)
done
set +m

# Whole lines only, so that the groups' lines never land inside this tier's progress line.
"$pytest" -m "not dataplane" --durations=15 2>&1 | sed -u ''
status=${PIPESTATUS[0]} failed=0
echo "==> unit and control-plane tests: exit $status after $((SECONDS - began))s"
[ "$status" -eq 0 ] || failed=1
for ((n = 1; n <= groups; n++)); do
  wait "${pids[$((n - 1))]}"
  status=$?
  echo "==> data-plane group $n: exit $status after $((SECONDS - began))s"
  [ "$status" -eq 0 ] || failed=1
done
pids=()
exit $failed
