#!/usr/bin/env bash
# Build (and optionally push) the Headway operator image from hack/Dockerfile.
#
#   hack/build-image.sh                                        # headway:<pyproject version>, the chart's default
#   hack/build-image.sh registry.example.com/headway           # tag: pyproject's version
#   hack/build-image.sh registry.example.com/headway 0.1.0-rc1 --push
#   IMAGE=registry.example.com/headway TAG=dev hack/build-image.sh --push
#   hack/build-image.sh --dry-run ...                          # print the commands, run nothing
#
# Options:
#   --push               push IMAGE:TAG after building (IMAGE must name a registry)
#   --dry-run            print the exact commands (shell-quoted) instead of running them
#   --platform P         passed to the build, e.g. linux/amd64 when building on an arm64 laptop
#   -h, --help           this text
# Arguments and environment (arguments win):
#   IMAGE                repository, default `headway` (values.yaml image.repository);
#                        IMAGE may carry a tag: registry.example.com/headway:0.2.0
#   TAG                  default: the version in pyproject.toml, which is the chart's appVersion
#                        (the tag the chart uses when image.tag is empty)
#   CONTAINER_TOOL       docker or podman; default: docker if installed, else podman
#   PYTHON_IMAGE         override the Dockerfile's pinned base image (e.g. with an @sha256 digest)
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
die() { echo "build-image.sh: $*" >&2; exit 2; }

push=false
dry_run=false
platform=""
positional=()
while [ $# -gt 0 ]; do
  case "$1" in
    --push) push=true ;;
    --dry-run) dry_run=true ;;
    --platform) [ $# -ge 2 ] || die "--platform needs a value"; platform="$2"; shift ;;
    --platform=*) platform="${1#--platform=}" ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) positional+=("$1") ;;
  esac
  shift
done
[ ${#positional[@]} -le 2 ] || die "at most two arguments, IMAGE and TAG (see --help)"

image="${positional[0]:-${IMAGE:-headway}}"
tag="${positional[1]:-${TAG:-}}"
# IMAGE:TAG in one argument (a colon after the last slash; a registry port comes before it).
last="${image##*/}"
if [[ "$last" == *:* ]]; then
  [ -z "$tag" ] || die "the tag is given twice: in IMAGE ($image) and as TAG ($tag)"
  tag="${last#*:}"
  image="${image%:*}"
fi
if [ -z "$tag" ]; then
  # version = "..." in the [project] table of pyproject.toml
  tag="$(awk '/^\[/{p=($0=="[project]")} p && /^version *=/{gsub(/^version *= *"|".*$/,""); print; exit}' pyproject.toml)"
  [ -n "$tag" ] || die "no version in pyproject.toml's [project] table; give TAG"
fi
[[ "$image" =~ ^[a-z0-9]([a-z0-9._/:-]*[a-z0-9])?$ ]] || die "invalid IMAGE '$image' (lowercase repository, e.g. registry.example.com/headway)"
[[ "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "invalid TAG '$tag'"
if $push && [[ "$image" != */* ]]; then
  die "--push: IMAGE '$image' names no registry (it would go to docker.io/library); use e.g. registry.example.com/headway"
fi

tool="${CONTAINER_TOOL:-}"
if [ -z "$tool" ]; then
  if command -v docker >/dev/null 2>&1; then tool=docker
  elif command -v podman >/dev/null 2>&1; then tool=podman
  elif $dry_run; then tool=docker; echo "build-image.sh: neither docker nor podman is installed; printing docker commands" >&2
  else die "neither docker nor podman is installed (or set CONTAINER_TOOL)"
  fi
fi

ref="$image:$tag"
build=("$tool" build -f hack/Dockerfile -t "$ref" --label "org.opencontainers.image.version=$tag")
[ -z "$platform" ] || build+=(--platform "$platform")
[ -z "${PYTHON_IMAGE:-}" ] || build+=(--build-arg "PYTHON_IMAGE=$PYTHON_IMAGE")
build+=(.)
pushcmd=("$tool" push "$ref")

# Print a command shell-quoted (copy-pasteable), then run it unless --dry-run.
run() {
  local line="" word
  for word in "$@"; do line+="${line:+ }$(printf '%q' "$word")"; done
  if $dry_run; then echo "$line"; else echo "+ $line" >&2; "$@"; fi
}

run "${build[@]}"
if $push; then run "${pushcmd[@]}"; fi
if ! $dry_run; then
  echo "built $ref$($push && echo ' and pushed it'). Install the chart with:" >&2
  echo "  helm install headway charts/headway -n headway-system --create-namespace --set image.repository=$image --set image.tag=$tag" >&2
fi
