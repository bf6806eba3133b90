#!/usr/bin/env bash
# image.sh builds the wif OCI image from this checkout, with nothing pulled
# from the internet: a statically linked wif (CGO off, -trimpath, version and
# revision stamped with -ldflags), Debian's CA roots, /etc/passwd with the
# non-root user 65532 ("wif"), writable /var/lib/wif and /tmp, FROM scratch —
# no shell, no package manager. With buildah's --timestamp the same checkout
# gives the same image id (reproducible).
#
#   hack/image.sh                 # ghcr.io/wif-project/wif:<Chart appVersion>
#   IMAGE=wif:dev hack/image.sh   # another name
#   VERSION=v1.2.3 hack/image.sh  # another version (default: the chart's appVersion)
#
# The chart's default image (image.repository:appVersion) is what this
# builds by default. buildah (Debian's package) is used because it builds
# FROM scratch without a daemon; podman runs the result (see README).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
chart_version="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' deploy/helm/wif/Chart.yaml)"
VERSION="${VERSION:-$chart_version}"
if [ -z "${REVISION:-}" ]; then
  REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
  if [ -n "$(git status --porcelain 2>/dev/null)" ]; then REVISION="$REVISION-dirty"; fi
fi
IMAGE="${IMAGE:-ghcr.io/wif-project/wif:$VERSION}"
STORAGE="${BUILDAH_STORAGE_DRIVER:-vfs}"
CA_ROOTS="${CA_ROOTS:-/etc/ssl/certs/ca-certificates.crt}"
# Commit time as the image's time: same checkout, same bytes.
EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
rootfs="$ctx/rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs" "$rootfs/var/lib/wif" "$rootfs/tmp"

echo "image.sh: building wif $VERSION ($REVISION) statically" >&2
CGO_ENABLED=0 go build -trimpath -buildvcs=false \
  -ldflags "-s -w -X github.com/wif-project/wif/internal/buildinfo.version=$VERSION -X github.com/wif-project/wif/internal/buildinfo.revision=$REVISION" \
  -o "$rootfs/usr/local/bin/wif" ./cmd/wif
cp "$CA_ROOTS" "$rootfs/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nwif:x:65532:65532:wif:/var/lib/wif:/sbin/nologin\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nwif:x:65532:\n' >"$rootfs/etc/group"
cp deploy/image/Containerfile "$ctx/Containerfile"
# Ownership and modes inside the image: buildah copies them from here.
chmod 0755 "$rootfs/usr/local/bin/wif"
chmod 1777 "$rootfs/tmp"
chown -R 65532:65532 "$rootfs/var/lib/wif" 2>/dev/null || { echo "image.sh: cannot chown (not root?): /var/lib/wif stays root-owned" >&2; }
find "$rootfs" -exec touch -h -d "@$EPOCH" {} +

echo "image.sh: buildah bud -t $IMAGE" >&2
buildah --storage-driver "$STORAGE" bud --quiet --timestamp "$EPOCH" --layers=false \
  --build-arg VERSION="$VERSION" --build-arg REVISION="$REVISION" -t "$IMAGE" -f "$ctx/Containerfile" "$ctx" >&2
buildah --storage-driver "$STORAGE" inspect --format '{{.FromImageID}}' "$IMAGE" >/dev/null 2>&1 || true
echo "$IMAGE"
