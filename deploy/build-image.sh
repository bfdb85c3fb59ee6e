#!/usr/bin/env bash
# Build the kdns image from the Dockerfile without a Docker daemon, and export it for
# `kind load image-archive` (docker-archive) or umoci (OCI archive).
#
# It builds what `docker build -t TAG .` builds: buildah bud on the source tree (.dockerignore
# applies), both stages of the Dockerfile, the build stage fetching Debian packages and PyPI wheels.
# Only the base differs where no registry can be reached: debian:bookworm-slim is used when it is
# in buildah's storage, else the same Debian release is assembled with mmdebstrap from Debian's
# mirror (cached) and passed as BASE. buildah runs with vfs storage and chroot isolation: as root in
# a plain container, with no daemon, overlay or user namespaces. See deploy/README.md.
set -euo pipefail
shopt -s inherit_errexit

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$ROOT/kdns/__init__.py")"
TAG="kdns:$VERSION"
BASE=""
DOCKER_ARCHIVE=""
OCI_ARCHIVE=""
CACHE="${KDNS_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kdns-image}"
PUBLIC_BASE="docker.io/library/debian:bookworm-slim"
LOCAL_BASE="localhost/kdns-base:bookworm-minbase"
# The suites debian:bookworm-slim lists: the release, its updates and its security updates.
SOURCES=(
  "deb http://deb.debian.org/debian bookworm main"
  "deb http://deb.debian.org/debian bookworm-updates main"
  "deb http://deb.debian.org/debian-security bookworm-security main"
)

usage() {
  cat <<EOF
usage: deploy/build-image.sh [options]
  -t, --tag NAME:TAG        image name (default $TAG); load it into kind under the same name
  -o, --docker-archive FILE write a docker-archive (default dist/kdns-image.tar unless --oci-archive)
      --oci-archive FILE    write an OCI archive (umoci: untar it, then 'umoci unpack --image DIR:TAG')
  -b, --base IMAGE          a Debian bookworm image already in buildah's storage (default:
                            $PUBLIC_BASE if present, else $LOCAL_BASE,
                            assembled with mmdebstrap when missing)
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
    -h|--help) usage; exit 0 ;;
    *) echo "build-image.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
[ -n "$DOCKER_ARCHIVE$OCI_ARCHIVE" ] || DOCKER_ARCHIVE="$ROOT/dist/kdns-image.tar"
for tool in buildah mmdebstrap; do
  command -v "$tool" >/dev/null || { echo "build-image.sh: $tool is missing (apt-get install $tool)" >&2; exit 1; }
done
WORK="$(mktemp -d "${TMPDIR:-/tmp}/kdns-image.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

bah() { buildah --storage-driver vfs "$@"; }
have_image() { bah inspect --type image "$1" >/dev/null 2>&1; }
step_start=$SECONDS
step() { echo "== $* (+$((SECONDS - step_start))s)"; }

# --- base image --------------------------------------------------------------------------------
# What debian:bookworm-slim is: the minbase variant (Essential and apt), without docs (copyright
# files kept), man pages and locales. The tarball is cached; the image is kept in vfs storage.
local_base() {
  have_image "$LOCAL_BASE" && return 0
  local tarball="$CACHE/debian-bookworm-minbase.tar"
  if [ ! -s "$tarball" ]; then
    step "assembling $LOCAL_BASE with mmdebstrap"
    mkdir -p "$CACHE"
    mmdebstrap --quiet --format=tar --variant=minbase \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
      bookworm "$tarball.$$.part" "${SOURCES[@]}"
    mv "$tarball.$$.part" "$tarball"   # whole or not at all, also with concurrent builds
  fi
  step "importing $tarball as $LOCAL_BASE"
  local c
  c="$(bah from --name "kdns-base-$$" scratch)"
  bah add "$c" "$tarball" / >/dev/null
  bah config --cmd '["bash"]' --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$c"
  bah commit --quiet --rm "$c" "$LOCAL_BASE" >/dev/null
}

if [ -z "$BASE" ]; then
  if have_image "$PUBLIC_BASE"; then BASE="$PUBLIC_BASE"; else local_base; BASE="$LOCAL_BASE"; fi
elif [ "$BASE" = "$LOCAL_BASE" ]; then
  local_base
elif ! have_image "$BASE"; then
  echo "build-image.sh: base $BASE is not in buildah's storage (buildah pull it first)" >&2; exit 1
fi

# --- image -------------------------------------------------------------------------------------
# The build stage reaches Debian's mirror and PyPI, as with docker build. Its pip trusts what this
# machine trusts: the host's CA bundle is mounted for the RUN steps and named in a pip.conf (a proxy
# that intercepts TLS to PyPI then works as for the host's own pip); the image keeps its own bundle.
# The image's ID, not its tag, is exported, so a concurrent build of the same tag cannot swap it.
HOST_CA=/etc/ssl/certs/ca-certificates.crt
volumes=()
if [ -s "$HOST_CA" ]; then
  printf '[global]\ncert = /etc/kdns-build-host-ca.crt\n' >"$WORK/pip.conf"
  volumes=(--volume "$HOST_CA:/etc/kdns-build-host-ca.crt:ro" --volume "$WORK/pip.conf:/etc/pip.conf:ro")
fi
step "buildah bud -t $TAG --build-arg BASE=$BASE $ROOT"
if ! bah bud --isolation chroot --pull=never --layers=false --build-arg "BASE=$BASE" "${volumes[@]}" \
    --iidfile "$WORK/iid" -t "$TAG" -f "$ROOT/Dockerfile" "$ROOT" >"$WORK/build.log" 2>&1; then
  cat "$WORK/build.log" >&2
  exit 1
fi
image_id="$(cat "$WORK/iid")"
# Earlier builds of the tag are now untagged; in vfs storage each is a full copy.
bah rmi --prune >/dev/null 2>&1 || true

# kubelet looks the image up under the Deployment's name (kdns:TAG = docker.io/library/kdns:TAG),
# so the archive carries $TAG itself.
if [ -n "$DOCKER_ARCHIVE" ]; then
  step "exporting docker-archive $DOCKER_ARCHIVE"
  mkdir -p "$(dirname "$DOCKER_ARCHIVE")"; rm -f "$DOCKER_ARCHIVE"
  bah push --quiet "$image_id" "docker-archive:$DOCKER_ARCHIVE:$TAG"
fi
if [ -n "$OCI_ARCHIVE" ]; then
  step "exporting oci-archive $OCI_ARCHIVE"
  mkdir -p "$(dirname "$OCI_ARCHIVE")"; rm -f "$OCI_ARCHIVE"
  bah push --quiet "$image_id" "oci-archive:$OCI_ARCHIVE:$TAG"
fi
step "done: $TAG ($image_id), $(bah images --noheading --format '{{.Size}}' "$image_id") uncompressed"
