#!/usr/bin/env bash
# Regenerates the wrapper Go modules under hack/tools/ from hack/versions.env.
#
# Why wrappers: k8s.io/kubernetes requires its staging modules (k8s.io/api, …) at v0.0.0
# and replaces them with local paths, so `go install k8s.io/kubernetes/cmd/…@vX` cannot
# work. A wrapper module that requires k8s.io/kubernetes and replaces each of those
# staging modules with its published v0.MINOR.PATCH builds fine. The replace list is
# read from kubernetes' own go.mod, never typed by hand. etcd's server module has the
# same shape, and kwok gets a wrapper too so every binary is pinned by a committed go.sum.
#
# Run it only when a version changes; the output (go.mod, go.sum) is committed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

downloaded_gomod() { go mod download -json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])'; }

write_wrapper() { # dir module-path go-version requires… -- tools…
  local dir=$1 path=$2 gover=$3; shift 3
  mkdir -p "$dir"; rm -f "$dir/go.mod" "$dir/go.sum"
  printf 'module %s\n\ngo %s\n' "$path" "$gover" >"$dir/go.mod"
  while [ "$1" != -- ]; do (cd "$dir" && go mod edit -require="$1"); shift; done; shift
  for tool in "$@"; do (cd "$dir" && go mod edit -tool="$tool"); done
}

echo "==> kubernetes $KUBERNETES_VERSION"
k8s_minor_patch=${KUBERNETES_VERSION#v1.}          # 34.4
staging_version=v0.$k8s_minor_patch                 # v0.34.4
k8s_gomod=$(downloaded_gomod "k8s.io/kubernetes@$KUBERNETES_VERSION")
dir=$here/tools/kubernetes
write_wrapper "$dir" kuberds.io/hack/tools/kubernetes 1.24.0 "k8s.io/kubernetes@$KUBERNETES_VERSION" -- \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl \
  k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
# kubernetes builds with its own GODEBUG defaults; keep them.
(cd "$dir" && go mod edit -godebug=default=go1.24)
staging=$(awk '/^require \(/{r=1;next} r&&/^\)/{r=0} r&&$1 ~ /^k8s\.io\// && $2=="v0.0.0"{print $1}' "$k8s_gomod")
[ -n "$staging" ] || { echo "no staging modules found in $k8s_gomod" >&2; exit 1; }
for m in $staging; do (cd "$dir" && go mod edit -replace="$m=$m@$staging_version"); done
echo "    $(wc -w <<<"$staging") staging modules replaced at $staging_version"
(cd "$dir" && go mod tidy)

echo "==> etcd $ETCD_VERSION"
write_wrapper "$here/tools/etcd" kuberds.io/hack/tools/etcd 1.26.0 "go.etcd.io/etcd/server/v3@$ETCD_VERSION" -- \
  go.etcd.io/etcd/server/v3 go.etcd.io/etcd/etcdctl/v3
(cd "$here/tools/etcd" && go mod edit -require="go.etcd.io/etcd/etcdctl/v3@$ETCD_VERSION" && go mod tidy)

echo "==> kwok $KWOK_VERSION"
write_wrapper "$here/tools/kwok" kuberds.io/hack/tools/kwok 1.26.0 "sigs.k8s.io/kwok@$KWOK_VERSION" -- \
  sigs.k8s.io/kwok/cmd/kwok
(cd "$here/tools/kwok" && go mod tidy)
echo "==> helm $HELM_VERSION"
write_wrapper "$here/tools/helm" kuberds.io/hack/tools/helm 1.26.0 "helm.sh/helm/v3@$HELM_VERSION" -- \
  helm.sh/helm/v3/cmd/helm
(cd "$here/tools/helm" && go mod tidy)
echo "==> seaweedfs $SEAWEEDFS_VERSION"
dir=$here/tools/seaweedfs
write_wrapper "$dir" kuberds.io/hack/tools/seaweedfs 1.26.0 "github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION" -- \
  github.com/seaweedfs/seaweedfs/weed
# Carry over seaweedfs' own replace lines so the binary is built as upstream builds it.
sw_gomod=$(downloaded_gomod "github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION")
awk '$1=="replace"{print $2"="$4"@"$5}' "$sw_gomod" | while read -r r; do (cd "$dir" && go mod edit -replace="$r"); done
(cd "$dir" && go mod tidy)
echo "==> coredns $COREDNS_VERSION"
write_wrapper "$here/tools/coredns" kuberds.io/hack/tools/coredns 1.26.0 "github.com/coredns/coredns@$COREDNS_VERSION" -- \
  github.com/coredns/coredns
(cd "$here/tools/coredns" && go mod tidy)
echo "==> argocd $ARGOCD_VERSION"
dir=$here/tools/argocd
write_wrapper "$dir" kuberds.io/hack/tools/argocd 1.25.5 "github.com/argoproj/argo-cd/v3@$ARGOCD_VERSION" -- \
  github.com/argoproj/argo-cd/v3/cmd
# Argo CD pins its Kubernetes libraries with replace lines (block form); carry over those
# that name a version, so it is built as upstream builds it.
argo_gomod=$(downloaded_gomod "github.com/argoproj/argo-cd/v3@$ARGOCD_VERSION")
awk '/^replace \(/{r=1;next} r&&/^\)/{r=0} r&&$2=="=>"&&NF==4{print $1"="$3"@"$4}' "$argo_gomod" |
  while read -r r; do (cd "$dir" && go mod edit -replace="$r"); done
(cd "$dir" && go mod tidy)
echo "==> done; commit hack/tools/*/go.{mod,sum}"
