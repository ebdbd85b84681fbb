#!/usr/bin/env bash
# The README's first command (`make up`): a local cluster with two real nodes, kuberds' images
# built and loaded, kuberds installed by its Helm chart, and a sample Multi-AZ DBInstance;
# then how to connect to it. Every step is cached or idempotent, so running it again is quick.
set -euo pipefail
cd "$(dirname "$0")/.."
began=$SECONDS
step() { echo; echo "=== [$((SECONDS - began))s] $*"; }

step "Kubernetes binaries (cached after the first build)"
bash hack/build-binaries.sh
bin=$(bash hack/build-binaries.sh --print-bin-dir)

step "Local cluster: control plane, two real nodes (zone-a, zone-b), kwok nodes"
python3 hack/cluster.py up --real-nodes
export KUBECONFIG
KUBECONFIG=$( (python3 hack/cluster.py status || true) | awk '/^kubeconfig:/ {print $2}')

step "Images: build (cached by content) and load into the nodes' containerd"
python3 hack/images.py all

step "kuberds: helm upgrade --install (CRDs, operator, RBAC, deletion-protection policy)"
"$bin/helm" upgrade --install kuberds charts/kuberds --namespace kuberds-system --create-namespace \
  --wait --timeout 5m

step "Sample: examples/dbinstance-multiaz.yaml (DBInstance orders, Multi-AZ)"
"$bin/kubectl" apply -f examples/dbinstance-multiaz.yaml
echo "    waiting for orders to become Available (first start: about a minute or two)…"
until [ "$("$bin/kubectl" get dbinstance orders -o jsonpath='{.status.phase}')" = Available ]; do
  if [ $((SECONDS - began)) -gt 3600 ]; then echo "orders is not Available; see: kubectl describe dbinstance orders" >&2; exit 1; fi
  printf '\r    phase: %-12s ready: %s  ' "$("$bin/kubectl" get dbinstance orders -o jsonpath='{.status.phase}')" \
    "$("$bin/kubectl" get dbinstance orders -o jsonpath='{.status.readyInstances}')"
  sleep 3
done
echo
"$bin/kubectl" get dbinstance orders

step "Done in $((SECONDS - began))s. Connect:"
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
