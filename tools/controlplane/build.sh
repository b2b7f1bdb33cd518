#!/usr/bin/env bash
# Usage: build.sh [COMPONENT...]
# Prints a folder holding the named components, building them first if needed. Components:
#   kube-apiserver etcd kubectl kube-controller-manager   (default: kube-apiserver etcd)
#   prometheus promtool                                  (a folder of their own)
# One call names components of one folder only.
#  - KUBEBUILDER_ASSETS set: that folder is used as it is for the Kubernetes components and etcd
#    (controller-runtime envtest's convention; its assets have kubectl but no controller manager).
#  - otherwise the pinned versions (versions.env) are built from Go modules into
#    ${FORGE_MANAGER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/forge-manager}/controlplane/<versions>/
#    once, and reused. Progress goes to stderr; only the folder goes to stdout.
# Build times on 2 cores, Go modules downloaded, an empty Go build cache: kube-apiserver ~6 min,
# etcd ~1 min, kube-controller-manager ~2 min and kubectl ~2 min after kube-apiserver (they share
# most packages), prometheus ~4 min, promtool ~1 min after it. GOFLAGS=-p=1 leaves a core free.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.env"

[ "$#" -gt 0 ] || set -- kube-apiserver etcd
kube=() prom=()
for c in "$@"; do
  case "$c" in
    kube-apiserver | etcd | kubectl | kube-controller-manager) kube+=("$c") ;;
    prometheus | promtool) prom+=("$c") ;;
    *) echo "Cannot build $c: not a component (kube-apiserver etcd kubectl kube-controller-manager prometheus promtool)" >&2; exit 2 ;;
  esac
done
if [ "${#kube[@]}" -gt 0 ] && [ "${#prom[@]}" -gt 0 ]; then
  echo "Cannot build $*: the Kubernetes components and Prometheus live in two folders; ask for them in two calls" >&2
  exit 2
fi

if [ "${#kube[@]}" -gt 0 ] && [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  for b in "${kube[@]}"; do
    [ -x "$KUBEBUILDER_ASSETS/$b" ] || { echo "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS has no executable $b" >&2; exit 1; }
  done
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

command -v go >/dev/null || {
  echo "Cannot build the local control plane: no 'go' on PATH and KUBEBUILDER_ASSETS is not set." >&2
  echo "Install Go 1.26+ (it builds kube-apiserver ${KUBERNETES_VERSION} and etcd ${ETCD_VERSION} from Go modules)," >&2
  echo "or point KUBEBUILDER_ASSETS at a folder holding kube-apiserver and etcd binaries." >&2
  exit 1
}

cache=${FORGE_MANAGER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/forge-manager}
if [ "${#kube[@]}" -gt 0 ]; then
  out="$cache/controlplane/k8s-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}"
else
  out="$cache/controlplane/prometheus-${PROMETHEUS_VERSION}"
fi
missing=0
for b in "$@"; do [ -x "$out/$b" ] || missing=1; done
if [ "$missing" -eq 0 ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$out"
lock="$out/.build.lock"
exec 9>"$lock"
flock 9 # two builders (tests and demo at once) wait for each other instead of racing

tmp=""
trap 'rm -f ${tmp:+"$tmp"} ${tmp:+"$tmp.log"}' EXIT # no half-built binary left behind, even on Ctrl-C

build() { # name, module dir, package, ldflags, build tags
  local name=$1 dir=$2 pkg=$3 ldflags=$4 tags=$5
  [ -x "$out/$name" ] && return 0
  local start=$SECONDS
  tmp="$out/.$name.tmp.$$"
  echo "building $name (first run only; minutes on 2 cores)..." >&2
  # -v lists each package as it is compiled: a running count is the progress indication.
  # With pipefail a failed `go build` fails the pipeline: report it instead of exiting silently.
  if ! ( cd "$here/$dir" && go build -v -trimpath -tags "$tags" -ldflags "-s -w $ldflags" -o "$tmp" "$pkg" ) 2>&1 |
    tee "$tmp.log" |
    awk -v n="$name" '{ c++; if (c % 25 == 0) { printf "  %s: %d packages compiled\n", n, c > "/dev/stderr"; fflush("/dev/stderr") } }'
  then
    echo "building $name failed; last output of go build:" >&2
    tail -n 40 "$tmp.log" >&2
    exit 1
  fi
  [ -x "$tmp" ] || { echo "building $name failed: go build wrote no binary" >&2; exit 1; }
  mv "$tmp" "$out/$name"
  rm -f "$tmp.log"
  tmp=""
  echo "built $name in $((SECONDS - start)) s" >&2
}

minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
kube_version="-X k8s.io/component-base/version.gitVersion=${KUBERNETES_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor} -X k8s.io/component-base/version.gitTreeState=clean"
# kubectl's `version --client` reads client-go's copy of the version.
client_version="-X k8s.io/client-go/pkg/version.gitVersion=${KUBERNETES_VERSION} -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=${minor} -X k8s.io/client-go/pkg/version.gitTreeState=clean"
prom_version="-X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION#v} -X github.com/prometheus/common/version.Branch=HEAD"
for c in "$@"; do
  case "$c" in
    etcd) build etcd etcd . "" "" ;;
    kube-apiserver | kube-controller-manager) build "$c" "$c" . "$kube_version" "" ;;
    kubectl) build kubectl kubectl . "$kube_version $client_version" "" ;;
    # remove_all_sd: static scrape targets only (no cloud SDKs to compile); the web UI's assets
    # are not embedded (the tests use the HTTP API only).
    prometheus | promtool) build "$c" prometheus "github.com/prometheus/prometheus/cmd/$c" "$prom_version" remove_all_sd ;;
  esac
done
echo "$out"
