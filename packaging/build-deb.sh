#!/bin/sh
# build-deb.sh builds the vigil-agent Debian package with dpkg-deb: the static binary, the systemd
# unit and the default configuration file (a conffile), written by `vigil-agent install` itself so
# that the package and a manual install are the same.
#
#   packaging/build-deb.sh [-v VERSION] [-a ARCH] [-o OUTDIR]
#
# ARCH is the Debian architecture (amd64, arm64); the binary is cross-built with CGO_ENABLED=0.
set -eu

version=0.0.0-dev
arch=$(go env GOARCH)
out=dist
while getopts v:a:o: opt; do
	case $opt in
	v) version=$OPTARG ;;
	a) arch=$OPTARG ;;
	o) out=$OPTARG ;;
	*) echo "usage: $0 [-v VERSION] [-a amd64|arm64] [-o OUTDIR]" >&2; exit 2 ;;
	esac
done
case $arch in amd64|arm64) ;; *) echo "unsupported architecture $arch" >&2; exit 2 ;; esac
command -v dpkg-deb >/dev/null || { echo "dpkg-deb not found (apt-get install dpkg)" >&2; exit 1; }

here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
pkg=$work/pkg

mkdir -p "$pkg/usr/bin" "$pkg/DEBIAN" "$out"
(cd "$here" && CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath \
	-ldflags "-s -w -X main.version=$version" -o "$pkg/usr/bin/vigil-agent" ./cmd/vigil-agent)
# The unit and configuration come from the binary itself; run the host's build for that.
(cd "$here" && CGO_ENABLED=0 go build -o "$work/vigil-agent-host" ./cmd/vigil-agent)
"$work/vigil-agent-host" install --root-prefix "$pkg" --binary /usr/bin/vigil-agent >/dev/null
# The state directory is made by the agent (0700); the package does not own it.
rm -rf "$pkg/var"
mkdir -p "$pkg/lib/systemd/system"
mv "$pkg/etc/systemd/system/vigil-agent.service" "$pkg/lib/systemd/system/"
rmdir "$pkg/etc/systemd/system" "$pkg/etc/systemd"

size=$(du -sk "$pkg" | cut -f1)
cat >"$pkg/DEBIAN/control" <<CONTROL
Package: vigil-agent
Version: $version
Architecture: $arch
Maintainer: Vigil developers <vigil@localhost>
Section: admin
Priority: optional
Installed-Size: $size
Description: Vigil host agent
 Sends this host's software inventory to a Vigil server over mutual TLS,
 obeys only a closed set of typed instructions and updates itself from
 ed25519-signed releases. Enroll with: vigil-agent enroll --server URL
 --token TOKEN --ca-fingerprint sha256:HEX
CONTROL
echo /etc/default/vigil-agent >"$pkg/DEBIAN/conffiles"
cat >"$pkg/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	# Started only once enrolled: an agent without identity would only fail and restart.
	if [ -f /var/lib/vigil-agent/config.json ]; then
		systemctl enable vigil-agent.service >/dev/null || true
		systemctl restart vigil-agent.service || true
	fi
fi
POSTINST
cat >"$pkg/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
	systemctl disable --now vigil-agent.service >/dev/null 2>&1 || true
fi
PRERM
chmod 0755 "$pkg/DEBIAN/postinst" "$pkg/DEBIAN/prerm"

deb=$out/vigil-agent_${version}_${arch}.deb
dpkg-deb --root-owner-group --build "$pkg" "$deb" >/dev/null
echo "$deb"
