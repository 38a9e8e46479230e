#!/usr/bin/env bash
# Installs the project into .venv and opens the desktop app.
#
#   bash scripts/run.sh            the app, with a server on this computer
#                                  (embedded SQLite, 127.0.0.1), nothing to set up
#   bash scripts/run.sh --demo     two windows, Alice and Bob, already chatting
#   bash scripts/run.sh ARGS...    other app options (python -m ui --help)
#
# Without a display (Linux, DISPLAY and WAYLAND_DISPLAY unset) it runs the
# command-line demo instead. On Linux, when Qt's runtime libraries are
# missing it names the Debian packages, and installs them when it runs as
# root with apt-get.
#
# MESSENGER_QT_CHECK, if set, is a command printing the missing libraries
# in place of the built-in check (the tests use it).
set -euo pipefail
cd "$(dirname "$0")/.."

# The packages Qt needs for a window on X11/XWayland (the design guide's list:
# Qt's own error message names the wrong library, so install them all).
QT_PACKAGES="libegl1 libgl1 libx11-6 libdbus-1-3 libfontconfig1 libglib2.0-0 libxkbcommon0
libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
libxcb-render-util0 libxcb-shape0 libxcb-xkb1 libwayland-cursor0 libwayland-egl1
fonts-dejavu-core"
QT_PACKAGES=$(echo $QT_PACKAGES)

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
# Install when pyproject.toml changed since the last install (the code itself
# is installed in editable mode). Quiet on success; the whole log on failure.
STAMP=.venv/.run-installed
if [ ! -e "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
    if ! { python -m pip install --quiet --upgrade pip &&
           python -m pip install --quiet -e ".[app]"; } >.venv/install.log 2>&1; then
        cat .venv/install.log >&2
        exit 1
    fi
    touch "$STAMP"
fi

demo=0
choose_server=0
for arg in "$@"; do
    case "$arg" in
        --demo) demo=1 ;;
        --server|--server=*|--local-server) choose_server=1 ;;
    esac
done

has_display() {
    case "$(uname -s)" in
        Linux|*BSD) [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ] ;;
        *) true ;;  # macOS and Windows always have one
    esac
}

if ! has_display; then
    echo "There is no display here (DISPLAY and WAYLAND_DISPLAY are unset), so this runs the command-line demo instead of the app."
    exec python -m messenger.client demo
fi

# The shared libraries Qt's widgets and its xcb platform plugin cannot find.
qt_missing_libraries() {
    if [ -n "${MESSENGER_QT_CHECK:-}" ]; then
        sh -c "$MESSENGER_QT_CHECK"
        return
    fi
    command -v ldd >/dev/null 2>&1 || return 0
    local qt
    qt=$(python -c 'import os, PySide6; print(os.path.dirname(PySide6.__file__))') || return 0
    { ldd "$qt"/QtWidgets*.so; ldd "$qt"/Qt/plugins/platforms/libqxcb.so; } 2>/dev/null |
        awk '/not found/ {print $1}' | sort -u
}

if [ "$(uname -s)" = Linux ]; then
    missing=$(qt_missing_libraries)
    if [ -n "$missing" ]; then
        echo "Qt's runtime libraries are missing ($(echo $missing)); they come with these Debian packages: $QT_PACKAGES" >&2
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "Installing them with apt-get..." >&2
            apt-get update -qq >&2
            # shellcheck disable=SC2086
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $QT_PACKAGES >&2
            missing=$(qt_missing_libraries)
            if [ -n "$missing" ]; then
                echo "Still missing after the install: $(echo $missing)" >&2
                exit 1
            fi
        else
            echo "Install them with: sudo apt-get install $QT_PACKAGES" >&2
            exit 1
        fi
    fi
fi

if [ "$demo" = 1 ] || [ "$choose_server" = 1 ]; then
    exec python -m ui "$@"
fi
exec python -m ui --local-server "$@"
