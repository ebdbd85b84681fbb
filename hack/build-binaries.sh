#!/usr/bin/env bash
# Builds the pinned Kubernetes, etcd, kwok, helm, SeaweedFS, CoreDNS and Argo CD binaries from their Go modules into a cache
# outside git, skipping whatever is already built. Prints progress: the first cold build
# compiles several thousand packages and takes tens of minutes on two cores.
#
#   hack/build-binaries.sh            # build what is missing, print the bin directory
#   KUBERDS_CACHE=/somewhere hack/build-binaries.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/versions.env"
source "$here/lib.sh"
export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -trimpath"

bin=$(kuberds_bin_dir)
if [ "${1:-}" = --print-bin-dir ]; then echo "$bin"; exit 0; fi
mkdir -p "$bin"

# Reads `go build -v` package names on stdin and prints a line every 100 packages.
progress() {
  local label=$1 n=0 start=$SECONDS
  while IFS= read -r line; do
    case "$line" in
      "#"*|*.go:[0-9]*) echo "    $line" ;;   # compiler messages pass through
      *) n=$((n + 1)); [ $((n % 100)) -eq 0 ] && echo "    [$label] $n packages compiled, $((SECONDS - start))s" ;;
    esac
  done
  echo "    [$label] $n packages compiled in $((SECONDS - start))s"
}

# go names a binary after the package path's last element, skipping a final /vN element.
go_binary_name() { local p=$1; [[ ${p##*/} =~ ^v[0-9]+$ ]] && p=${p%/*}; echo "${p##*/}"; }

build_group() { # label module-dir ldflags name=package…
  local label=$1 dir=$2 ldflags=$3; shift 3
  # What the group is built from: its pinned modules and flags. A different stamp means
  # a changed pin, so the group's binaries are all rebuilt.
  local stamp; stamp=$(cat "$dir/go.mod" "$dir/go.sum" <(echo "$ldflags") | sha256sum | cut -c1-16)
  local missing=() names=() pair
  for pair in "$@"; do
    if [ "$(cat "$bin/.$label.stamp" 2>/dev/null)" != "$stamp" ] || [ ! -x "$bin/${pair%%=*}" ]; then
      missing+=("${pair#*=}"); names+=("${pair%%=*}")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then echo "==> $label: cached in $bin"; return; fi
  echo "==> $label: building ${names[*]}"
  local tmp i; tmp=$(mktemp -d "$bin/.build.XXXXXX")
  (cd "$dir" && go build -v -ldflags "-s -w $ldflags" -o "$tmp/" "${missing[@]}") 2>&1 | progress "$label"
  [ "${PIPESTATUS[0]}" -eq 0 ] || { rm -rf "$tmp"; echo "build of $label failed" >&2; exit 1; }
  for i in "${!missing[@]}"; do mv "$tmp/$(go_binary_name "${missing[$i]}")" "$bin/${names[$i]}"; done
  rmdir "$tmp"
  echo "$stamp" >"$bin/.$label.stamp"
}

k8s_major_minor=${KUBERNETES_VERSION#v}; k8s_minor=${k8s_major_minor#*.}; k8s_minor=${k8s_minor%%.*}
vpkg=k8s.io/component-base/version
k8s_ldflags="-X $vpkg.gitVersion=$KUBERNETES_VERSION -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$k8s_minor \
 -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"
k8s_ldflags="$k8s_ldflags ${k8s_ldflags//k8s.io\/component-base\/version/k8s.io/client-go/pkg/version}"

started=$SECONDS
build_group etcd "$here/tools/etcd" "" etcd=go.etcd.io/etcd/server/v3 etcdctl=go.etcd.io/etcd/etcdctl/v3
build_group kwok "$here/tools/kwok" "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" kwok=sigs.k8s.io/kwok/cmd/kwok
# Stamped as helm's own Makefile does: without a cluster (`helm template`, `helm lint`) helm
# assumes the Kubernetes version of its client-go (v0.N is 1.N); unstamped it assumes 1.20,
# older than the chart's kubeVersion.
helm_k8s_minor=$(awk '$1 == "k8s.io/client-go" {print $2}' "$here/tools/helm/go.mod" | cut -d. -f2)
helm_ldflags="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for p in chartutil lint/rules; do
  helm_ldflags+=" -X helm.sh/helm/v3/pkg/$p.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/$p.k8sVersionMinor=$helm_k8s_minor"
done
build_group helm "$here/tools/helm" "$helm_ldflags" helm=helm.sh/helm/v3/cmd/helm
build_group seaweedfs "$here/tools/seaweedfs" "" weed=github.com/seaweedfs/seaweedfs/weed
build_group coredns "$here/tools/coredns" "" coredns=github.com/coredns/coredns
k=k8s.io/kubernetes/cmd
build_group kubernetes "$here/tools/kubernetes" "$k8s_ldflags" \
  kube-apiserver=$k/kube-apiserver kube-controller-manager=$k/kube-controller-manager \
  kube-scheduler=$k/kube-scheduler kubectl=$k/kubectl kubelet=$k/kubelet kube-proxy=$k/kube-proxy
# Argo CD is one multi-call binary (ARGOCD_BINARY_NAME picks the component). Only the GitOps
# e2e scenario and the health-check unit tests use it; KUBERDS_SKIP_ARGOCD=1 skips it.
if [ "${KUBERDS_SKIP_ARGOCD:-}" != 1 ]; then
  argo_ldflags="-X github.com/argoproj/argo-cd/v3/common.version=${ARGOCD_VERSION#v}"
  build_group argocd "$here/tools/argocd" "$argo_ldflags" argocd=github.com/argoproj/argo-cd/v3/cmd
fi
echo "==> binaries ready in $bin ($((SECONDS - started))s)"
