#!/usr/bin/env bash
# Installs everything the test suite needs (Debian packages, a virtual environment with pixlift and its test
# dependencies) and runs every check: ruff, mypy and all tests. Safe to run again; it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  chromium                                   # the web UI's browser tests (Playwright drives Debian's build)
  xvfb trayer x11-utils xdotool xclip imagemagick   # the tray under a virtual X server
  dbus dbus-x11 dunst                        # menus and notifications (gtk/appindicator backends)
  libgirepository1.0-dev libcairo2-dev pkg-config gir1.2-gtk-3.0 gir1.2-ayatanaappindicator3-0.1  # PyGObject
  shellcheck desktop-file-utils systemd      # the installer scripts and the units they write
  libglib2.0-bin gnome-settings-daemon-common   # gsettings and GNOME's shortcut schema: the installer's hotkey
  libimage-exiftool-perl                     # exiftool: the independent reader that judges metadata removal
  openssh-sftp-server                        # OpenSSH's own sftp-server, a real SFTP server for the tests
  openssh-client                             # ssh-keygen, ssh-agent, ssh-add: SFTP logins by key and by agent
  libjxl-tools                               # cjxl/djxl: real JPEG XL codestreams, and their pixels decoded
  tinyproxy-bin                              # a corporate proxy in front of the S3 test server (test_networks.py)
  iproute2 util-linux                        # ip and unshare: the SSRF tests' namespaced network (ssrf_world.py)
)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test,tray]'
export PATH="$PWD/.venv/bin:$PATH"

# Browser libraries the tests load into Chromium (Uppy's bundles, for tests/test_uppy.py), from npm, not committed.
BROWSER_LIBS=(uppy5@npm:uppy@5.2.4 uppy6@npm:uppy@6.0.1)
if [ ! -f .browser-libs/node_modules/uppy5/dist/uppy.min.js ] || [ ! -f .browser-libs/node_modules/uppy6/dist/uppy.min.js ]; then
  # npm comes with Node.js; Debian's own npm package only where there is none (it conflicts with other Node builds)
  command -v npm >/dev/null || $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null
  mkdir -p .browser-libs
  npm install --prefix .browser-libs --no-save --no-package-lock --no-audit --no-fund --loglevel=error "${BROWSER_LIBS[@]}"
fi
unset AWS_CA_BUNDLE  # rclone (Go) refuses some CA bundles; the tests only talk to loopback

echo "== ruff"; ruff check daemon tests bench
echo "== mypy"; mypy
echo "== pytest"; python -m pytest -q -p no:cacheprovider "$@"
