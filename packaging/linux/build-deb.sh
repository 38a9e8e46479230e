#!/usr/bin/env bash
# Builds the desktop app's Linux bundle (PyInstaller, packaging/messenger.spec)
# and wraps it in a Debian package:
#
#   /opt/messenger/                   the one-folder bundle
#   /usr/bin/messenger                -> /opt/messenger/messenger
#   /usr/share/applications/messenger.desktop   (handles messenger: links)
#   /usr/share/icons/hicolor/*/apps/messenger.png, scalable/apps/messenger.svg
#   /usr/share/metainfo/org.example.Messenger.metainfo.xml
#   /usr/share/doc/messenger/copyright
#
# Usage: packaging/linux/build-deb.sh [OUT_DIR]        (default: dist/)
#   WORK_DIR=...        build directory (default: build/)
#   SKIP_PYINSTALLER=1  reuse $WORK_DIR/dist/messenger from an earlier build
#
# Needs: pyinstaller (pip install -e '.[packaging]'), dpkg-deb, binutils
# (PyInstaller), desktop-file-validate (desktop-file-utils); appstreamcli
# (appstream) validates the metainfo when installed. Prints the path of the
# .deb as its last line.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$(mkdir -p "${1:-$ROOT/dist}" && cd "${1:-$ROOT/dist}" && pwd)
WORK=${WORK_DIR:-$ROOT/build}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
PYTHON=${PYTHON:-python3}
cd "$ROOT"

for tool in dpkg-deb desktop-file-validate; do
    command -v "$tool" >/dev/null || { echo "build-deb: $tool is missing" >&2; exit 1; }
done

VERSION=$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
ARCH=$(dpkg --print-architecture)
APP_ID=org.example.Messenger

# 1. The bundle.
if [ -z "${SKIP_PYINSTALLER:-}" ]; then
    "$PYTHON" -m PyInstaller --noconfirm --clean --log-level WARN \
        --distpath "$WORK/dist" --workpath "$WORK/pyinstaller" packaging/messenger.spec
fi
BUNDLE=$WORK/dist/messenger
[ -x "$BUNDLE/messenger" ] || { echo "build-deb: no bundle at $BUNDLE" >&2; exit 1; }

# 2. The package tree.
STAGE=$WORK/deb/messenger_${VERSION}_${ARCH}
rm -rf "$STAGE"
mkdir -p "$STAGE/DEBIAN" "$STAGE/opt" "$STAGE/usr/bin" "$STAGE/usr/share/applications" \
    "$STAGE/usr/share/metainfo" "$STAGE/usr/share/icons" "$STAGE/usr/share/doc/messenger"
cp -a "$BUNDLE" "$STAGE/opt/messenger"
ln -s /opt/messenger/messenger "$STAGE/usr/bin/messenger"
DESKTOP=$STAGE/usr/share/applications/messenger.desktop
install -m 0644 resources/messenger.desktop "$DESKTOP"
install -m 0644 "resources/$APP_ID.metainfo.xml" "$STAGE/usr/share/metainfo/$APP_ID.metainfo.xml"
cp -r resources/icons/hicolor "$STAGE/usr/share/icons/hicolor"
cat > "$STAGE/usr/share/doc/messenger/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: messenger
Comment: /opt/messenger bundles Python, Qt (PySide6, LGPL-3.0), SQLCipher and
 other libraries with their licences; the fonts' licences are in
 /opt/messenger/_internal/resources/fonts/.

Files: *
License: AGPL-3.0-or-later
COPYRIGHT
find "$STAGE" -type d -exec chmod 0755 {} +
find "$STAGE/usr/share" -type f -exec chmod 0644 {} +

# 3. Checks of the desktop integration.
# resources/messenger.desktop follows the Desktop Entry spec 1.5
# (SingleMainWindow). desktop-file-utils before 0.27 (Debian 12) rejects 1.5:
# there the package gets the 1.4 form, with GNOME's own older key for the
# same hint; any other error still fails the build.
if ! desktop-file-validate "$DESKTOP" >/dev/null 2>&1; then
    sed -i -e 's/^Version=1\.5$/Version=1.4/' \
        -e 's/^SingleMainWindow=/X-GNOME-SingleWindow=/' "$DESKTOP"
    echo "build-deb: desktop-file-validate predates spec 1.5; packaged the 1.4 form" >&2
fi
desktop-file-validate "$DESKTOP"
if command -v appstreamcli >/dev/null; then
    appstreamcli validate --no-net --explain "$STAGE/usr/share/metainfo/$APP_ID.metainfo.xml"
elif [ "${CI:-}" = true ]; then
    echo "build-deb: appstreamcli is missing (apt-get install appstream)" >&2
    exit 1
fi

# 4. Depends: the Qt runtime libraries the xcb/offscreen platforms load (the
# architecture guide's list, ui.__main__.QT_PACKAGES), plus the package of
# every system library a bundled binary links to that PyInstaller left out
# (libGL, libEGL, libxcb, libwayland, glibc...), found with ldd and dpkg -S.
QT_RUNTIME=$("$PYTHON" -c 'from ui.__main__ import QT_PACKAGES; print(QT_PACKAGES)')
LIBS=$(find "$STAGE/opt/messenger" -type f -name '*.so*' -print0 |
    LD_LIBRARY_PATH="$STAGE/opt/messenger/_internal:$STAGE/opt/messenger/_internal/PySide6/Qt/lib" \
        xargs -0 -n 20 ldd 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3}' |
    grep -v "^$STAGE/" | sort -u)
LINKED=""
for lib in $LIBS; do
    owner=$(dpkg -S "$lib" 2>/dev/null || dpkg -S "$(readlink -f "$lib")" 2>/dev/null ||
        dpkg -S "/usr$lib" 2>/dev/null || true)
    [ -n "$owner" ] && LINKED="$LINKED ${owner%%:*}"
done
DEPENDS=$(printf '%s\n' $QT_RUNTIME $LINKED | sort -u | paste -sd, | sed 's/,/, /g')

INSTALLED_SIZE=$(du -sk --apparent-size "$STAGE" | cut -f1)
cat > "$STAGE/DEBIAN/control" <<CONTROL
Package: messenger
Version: $VERSION
Architecture: $ARCH
Maintainer: Messenger developers <messenger@example.org>
Installed-Size: $INSTALLED_SIZE
Depends: $DEPENDS
Section: net
Priority: optional
Description: end-to-end encrypted desktop messenger (MLS, RFC 9420)
 A desktop messenger that encrypts every message end to end with Messaging
 Layer Security (RFC 9420). Accounts need no phone number or email; chat one
 to one and in groups on a server you choose, or run one on this computer.
CONTROL

# 5. The .deb (files owned by root whoever builds it).
DEB=$OUT/messenger_${VERSION}_${ARCH}.deb
dpkg-deb --root-owner-group -Zzstd --build "$STAGE" "$DEB" >/dev/null
echo "$DEB"
