#!/usr/bin/env bash
# The README's first command (`make up`), from a fresh machine (its Debian packages installed)
# to a running sample: the pinned binaries, kuberds' images (the Debian base image made with
# debootstrap first), a local cluster with two real nodes, the images loaded into them,
# kuberds installed (the CRDs with kubectl, then the Helm chart), and a sample Multi-AZ
# DBInstance; then how to connect to it. Every step is cached or idempotent, so running it
# again is quick. Prints the time of every phase, and all of them at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
began=$SECONDS phase="" phase_began=$SECONDS
timings=()
end_phase() {
  [ -n "$phase" ] || return 0
  timings+=("$(printf '%6ss  %s' $((SECONDS - phase_began)) "$phase")")
  echo "    ($phase: $((SECONDS - phase_began))s)"
}
step() { # phase description
  end_phase
  phase=$1 phase_began=$SECONDS
  echo; echo "=== [$((SECONDS - began))s] $2"
}

step binaries "Kubernetes, etcd, kwok, helm, SeaweedFS, CoreDNS and Argo CD binaries (cached after the first build)"
bash hack/build-binaries.sh
bin=$(bash hack/build-binaries.sh --print-bin-dir)

step images "Images: the Debian base (debootstrap), operator, postgres, memcached, redis, mariadb, s3 (podman; cached by content)"
python3 hack/images.py build

step cluster "Local cluster: control plane, two real nodes (zone-a, zone-b), kwok nodes"
python3 hack/cluster.py up --real-nodes
export KUBECONFIG
KUBECONFIG=$( (python3 hack/cluster.py status || true) | awk '/^kubeconfig:/ {print $2}')
if [ "$("$bin/kubectl" get nodes -l kuberds.io/node-type=real -o name | wc -l)" -lt 2 ]; then
  echo "error: the local cluster that runs has no real nodes (started by \`make cluster-up\` or the tests);" \
    "stop it with \`make cluster-down\`, then run \`make up\` again" >&2
  exit 1
fi

step load "Images: load into the nodes' containerd (skipped where a node has them)"
python3 hack/images.py load

step kuberds "kuberds: the CRDs and the deletion-protection policy (kubectl), then helm upgrade --install"
# As the README's upgrade path: crds/ first, since Helm never upgrades a chart's CRDs.
"$bin/kubectl" apply --server-side --force-conflicts -f crds/
"$bin/kubectl" wait crd -l app.kubernetes.io/part-of=kuberds --for=condition=Established --timeout=60s
"$bin/helm" upgrade --install kuberds charts/kuberds --namespace kuberds-system --create-namespace \
  --wait --timeout 5m

step sample "Sample: examples/dbinstance-multiaz.yaml (DBInstance orders, Multi-AZ)"
"$bin/kubectl" apply -f examples/dbinstance-multiaz.yaml
echo "    waiting for orders to become Available (first start: about a minute or two)…"
until [ "$("$bin/kubectl" get dbinstance orders -o jsonpath='{.status.phase}')" = Available ]; do
  if [ $((SECONDS - phase_began)) -gt 900 ]; then
    echo "orders is not Available after 15 minutes; see: kubectl describe dbinstance orders" >&2
    exit 1
  fi
  printf '\r    phase: %-12s ready: %s  ' "$("$bin/kubectl" get dbinstance orders -o jsonpath='{.status.phase}')" \
    "$("$bin/kubectl" get dbinstance orders -o jsonpath='{.status.readyInstances}')"
  sleep 3
done
echo
"$bin/kubectl" get dbinstance orders
if [ $((SECONDS - phase_began)) -gt 60 ]; then # usually 15 s: say where the time went
  echo "    slower than usual; the pods and the latest events:"
  "$bin/kubectl" get pods -o wide -l app.kubernetes.io/instance=orders || true
  ("$bin/kubectl" get events --sort-by=.lastTimestamp | tail -25) || true
fi
end_phase

echo; echo "=== make up done in $((SECONDS - began))s:"
printf '%s\n' "${timings[@]}"
echo; echo "Connect:"
secret=$("$bin/kubectl" get dbinstance orders -o jsonpath='{.status.masterUserSecretName}')
tls=$("$bin/kubectl" get dbinstance orders -o jsonpath='{.status.certificateSecretName}')
cat <<EOF
    export KUBECONFIG=$KUBECONFIG PATH=$bin:\$PATH
    kubectl port-forward svc/orders 5432:5432 &   # to the current primary (a port-forward stays on
                                                   # that pod: restart it after a failover)
    kubectl get secret $tls -o jsonpath='{.data.ca\\.crt}' | base64 -d > orders-ca.crt
    PGPASSWORD=\$(kubectl get secret $secret -o jsonpath='{.data.password}' | base64 -d) \\
      psql "host=127.0.0.1 port=5432 user=dbadmin dbname=app sslmode=verify-ca sslrootcert=orders-ca.crt"
  or from inside the cluster, where the certificate's names match (sslmode=verify-full):
  host orders.default.svc (writer), orders-ro.default.svc (reader).
  Stop everything: make cluster-down
EOF
