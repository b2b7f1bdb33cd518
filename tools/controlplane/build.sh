#!/usr/bin/env bash
# Prints a folder holding `kube-apiserver` and `etcd`, building them first if needed.
#  - KUBEBUILDER_ASSETS set: that folder is used as it is (controller-runtime envtest's convention).
#  - otherwise the pinned versions (versions.env) are built from Go modules into
#    ${FORGE_MANAGER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/forge-manager}/controlplane/<versions>/
#    once, and reused. Progress goes to stderr; only the folder goes to stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.env"

if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  for b in kube-apiserver etcd; do
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
out="$cache/controlplane/k8s-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}"
if [ -x "$out/kube-apiserver" ] && [ -x "$out/etcd" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$out"
lock="$out/.build.lock"
exec 9>"$lock"
flock 9 # two builders (tests and demo at once) wait for each other instead of racing

tmp=""
trap 'rm -f ${tmp:+"$tmp"} ${tmp:+"$tmp.log"}' EXIT # no half-built binary left behind, even on Ctrl-C

build() { # name, module dir, ldflags
  local name=$1 dir=$2 ldflags=$3
  [ -x "$out/$name" ] && return 0
  local start=$SECONDS
  tmp="$out/.$name.tmp.$$"
  echo "building $name (first run only; several minutes on 2 cores)..." >&2
  # -v lists each package as it is compiled: a running count is the progress indication.
  # With pipefail a failed `go build` fails the pipeline: report it instead of exiting silently.
  if ! ( cd "$here/$dir" && go build -v -trimpath -ldflags "-s -w $ldflags" -o "$tmp" . ) 2>&1 |
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
build etcd etcd ""
build kube-apiserver kube-apiserver "-X k8s.io/component-base/version.gitVersion=${KUBERNETES_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor} -X k8s.io/component-base/version.gitTreeState=clean"
echo "$out"
