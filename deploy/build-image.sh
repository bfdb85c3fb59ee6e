#!/usr/bin/env bash
# Build the kdns image without a Docker daemon and export it for `kind load image-archive`.
#
# buildah (vfs storage, chroot isolation: works as root in a plain container, no daemon, no
# overlay or user namespaces needed). When the base image is not in local storage and no registry
# can be reached, a Debian bookworm base with python3 + libcap2-bin is assembled with mmdebstrap
# (Debian's own package mirror) and cached. kdns and its dependencies are built into wheels here,
# outside the image, so the build itself needs no network. See deploy/README.md.
set -euo pipefail
shopt -s inherit_errexit

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$ROOT/kdns/__init__.py")"
TAG="kdns:$VERSION"
BASE=""
DOCKER_ARCHIVE=""
OCI_ARCHIVE=""
CACHE="${KDNS_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kdns-image}"
PY="${PYTHON:-}"
LOCAL_BASE="localhost/kdns-base:bookworm-python3"
PUBLIC_BASE="python:3.12-slim"

usage() {
  cat <<EOF
usage: deploy/build-image.sh [options]
  -t, --tag NAME:TAG        image name (default $TAG); load it into kind under the same name
  -o, --docker-archive FILE write a docker-archive (default dist/kdns-image.tar unless --oci-archive)
      --oci-archive FILE    write an OCI archive (umoci: untar it, then 'umoci unpack --image DIR:TAG')
  -b, --base IMAGE          base image already in buildah's storage, with the builder's Python
                            (default: $PUBLIC_BASE if present with that Python, else
                            $LOCAL_BASE, assembled with mmdebstrap when missing)
      --python PY           interpreter that builds the wheels (default .venv/bin/python or python3)
  -h, --help
Environment: KDNS_IMAGE_CACHE (default $CACHE) keeps the mmdebstrap base tarball between runs.
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    -t|--tag) TAG="$2"; shift 2 ;;
    -o|--docker-archive) DOCKER_ARCHIVE="$2"; shift 2 ;;
    --oci-archive) OCI_ARCHIVE="$2"; shift 2 ;;
    -b|--base) BASE="$2"; shift 2 ;;
    --python) PY="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build-image.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
[ -n "$DOCKER_ARCHIVE$OCI_ARCHIVE" ] || DOCKER_ARCHIVE="$ROOT/dist/kdns-image.tar"
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
for tool in buildah mmdebstrap; do
  command -v "$tool" >/dev/null || { echo "build-image.sh: $tool is missing (apt-get install $tool)" >&2; exit 1; }
done
# The build context holds only the wheels (the layout the Dockerfile expects: dist/wheels/), in a
# directory of this run's own, so concurrent builds of one checkout do not trip over each other.
CONTEXT="$(mktemp -d "${TMPDIR:-/tmp}/kdns-image.XXXXXX")"
trap 'rm -rf "$CONTEXT"' EXIT
WHEELS="$CONTEXT/dist/wheels"

bah() { buildah --storage-driver vfs "$@"; }
have_image() { bah inspect --type image "$1" >/dev/null 2>&1; }
step_start=$SECONDS
step() { echo "== $* (+$((SECONDS - step_start))s)"; }

# --- base image --------------------------------------------------------------------------------
# The local base: minbase bookworm (python3 3.11, which kdns supports) + libcap2-bin for setcap;
# docs, man pages and locales left out. The tarball is cached; the image is kept in vfs storage.
local_base() {
  have_image "$LOCAL_BASE" && return 0
  local tarball="$CACHE/debian-bookworm-python3.tar"
  if [ ! -s "$tarball" ]; then
    step "assembling $LOCAL_BASE with mmdebstrap"
    mkdir -p "$CACHE"
    mmdebstrap --quiet --format=tar --variant=minbase --include=python3,libcap2-bin \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' bookworm "$tarball.$$.part"
    mv "$tarball.$$.part" "$tarball"   # whole or not at all, also with concurrent builds
  fi
  step "importing $tarball as $LOCAL_BASE"
  local c
  c="$(bah from --name "kdns-base-$$" scratch)"
  bah add "$c" "$tarball" / >/dev/null
  bah config --cmd '["/usr/bin/python3"]' \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$c"
  bah commit --quiet --rm "$c" "$LOCAL_BASE" >/dev/null
}

target_python() {
  local c v
  c="$(bah from --name "kdns-probe-$$" --pull=never --quiet "$1")"
  v="$(bah run --isolation chroot "$c" -- python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  bah rm "$c" >/dev/null
  echo "$v"
}
HOST_PY="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ -z "$BASE" ]; then
  if have_image "$PUBLIC_BASE" && [ "$(target_python "$PUBLIC_BASE")" = "$HOST_PY" ]; then
    BASE="$PUBLIC_BASE"
  else
    local_base; BASE="$LOCAL_BASE"
  fi
elif [ "$BASE" = "$LOCAL_BASE" ]; then
  local_base
elif ! have_image "$BASE"; then
  echo "build-image.sh: base $BASE is not in buildah's storage (buildah pull it first)" >&2; exit 1
fi

# --- wheels ------------------------------------------------------------------------------------
# Wheels must match the base's Python: kdns's own (its fast path is a C extension) and compiled
# dependencies such as aiohttp and uvloop are built per minor version. pip wheel builds them here
# with the builder's Python, so that must be the base's minor version (--python picks another).
step "base $BASE"
TARGET_PY="$(target_python "$BASE")"
[ -n "$TARGET_PY" ] || { echo "build-image.sh: cannot run python3 in $BASE" >&2; exit 1; }
if [ "$TARGET_PY" != "$HOST_PY" ]; then
  echo "build-image.sh: $BASE has Python $TARGET_PY but $PY is $HOST_PY; kdns's C extension is built" \
    "for the builder's Python: pass --python python$TARGET_PY, or omit --base for the local base" >&2
  exit 1
fi
step "wheels for python $TARGET_PY"
mkdir -p "$WHEELS"
pipq() {  # pip's chatter goes to a log, shown only when pip fails
  "$PY" -m pip --disable-pip-version-check -q "$@" >"$CONTEXT/pip.log" 2>&1 || { cat "$CONTEXT/pip.log" >&2; return 1; }
}
pipq wheel -w "$WHEELS" "$ROOT[fast]" pip

# --- image -------------------------------------------------------------------------------------
step "buildah bud $TAG FROM $BASE"
bah bud --quiet --isolation chroot --pull=never --layers=false --build-arg "BASE=$BASE" \
  -f "$ROOT/Dockerfile" -t "$TAG" "$CONTEXT" >/dev/null
new_id="$(bah inspect --type image --format '{{.FromImageID}}' "$TAG")"
# Earlier builds of the tag are now untagged; in vfs storage each is a full copy (~350 MB).
bah rmi --prune >/dev/null 2>&1 || true

# kubelet looks the image up under the Deployment's name (kdns:TAG = docker.io/library/kdns:TAG),
# so the archive carries $TAG itself.
if [ -n "$DOCKER_ARCHIVE" ]; then
  step "exporting docker-archive $DOCKER_ARCHIVE"
  mkdir -p "$(dirname "$DOCKER_ARCHIVE")"; rm -f "$DOCKER_ARCHIVE"
  bah push --quiet "$TAG" "docker-archive:$DOCKER_ARCHIVE:$TAG"
fi
if [ -n "$OCI_ARCHIVE" ]; then
  step "exporting oci-archive $OCI_ARCHIVE"
  mkdir -p "$(dirname "$OCI_ARCHIVE")"; rm -f "$OCI_ARCHIVE"
  bah push --quiet "$TAG" "oci-archive:$OCI_ARCHIVE:$TAG"
fi
step "done: $TAG ($new_id)"
