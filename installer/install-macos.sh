#!/bin/sh
# Install pixlift for the current user on macOS and start it at every login (a LaunchAgent).
#
# It installs pixlift into a virtual environment in ~/Library/Application Support/pixlift-venv, writes
# ~/Library/LaunchAgents/com.pixlift.daemon.plist and loads it with launchctl. Running it again upgrades pixlift
# and reloads the agent. No root needed.
#
# usage: install-macos.sh [options] [SOURCE]
#   SOURCE          what pip installs: a wheel, a source folder, or a requirement (default: pixlift, from PyPI)
#   --python PATH   the Python 3.11+ to use (default: $PIXLIFT_PYTHON, else python3)
#   --no-start      write the agent but do not load it now (it loads at the next login)
#   --print-plist   print the agent this would write, and change nothing
#   -h, --help      show this help
set -eu

usage() { sed -n '2,/^set -eu/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }
say() { printf 'pixlift: %s\n' "$*"; }
die() { printf 'pixlift: %s\n' "$*" >&2; exit 1; }

HERE=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
LABEL=com.pixlift.daemon
VENV=${PIXLIFT_VENV:-$HOME/Library/Application Support/pixlift-venv}
PLIST=$HOME/Library/LaunchAgents/$LABEL.plist
LOG=$HOME/Library/Logs/pixlift.log
PIXLIFT=$VENV/bin/pixlift

PYTHON=${PIXLIFT_PYTHON:-python3}
SOURCE=pixlift
START=yes
PRINT=no

while [ $# -gt 0 ]; do
    case $1 in
        --python) [ $# -ge 2 ] || die "--python needs a path"; PYTHON=$2; shift ;;
        --no-start) START=no ;;
        --print-plist) PRINT=yes ;;
        -h|--help) usage; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) SOURCE=$1 ;;
    esac
    shift
done

xml_escape() { printf '%s' "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g'; }
sed_escape() { printf '%s' "$1" | sed 's/[&|\\]/\\&/g'; }

render_plist() {
    sed -e "s|@PIXLIFT@|$(sed_escape "$(xml_escape "$PIXLIFT")")|g" \
        -e "s|@LOG@|$(sed_escape "$(xml_escape "$LOG")")|g" "$HERE/$LABEL.plist"
}

if [ "$PRINT" = yes ]; then
    render_plist
    exit 0
fi

if [ -e "$SOURCE" ]; then
    SOURCE=$(CDPATH='' cd -- "$(dirname -- "$SOURCE")" && pwd)/$(basename -- "$SOURCE")
fi
command -v "$PYTHON" >/dev/null 2>&1 || die "no $PYTHON found; install Python 3.11 or newer (python.org or Homebrew), or pass --python PATH"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "pixlift needs Python 3.11 or newer; pass --python PATH"

if [ ! -x "$VENV/bin/python" ]; then
    say "creating the environment $VENV"
    mkdir -p "$(dirname -- "$VENV")"
    "$PYTHON" -m venv "$VENV"
fi
say "installing $SOURCE into $VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "$SOURCE"
if [ -e "$SOURCE" ]; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$SOURCE"
fi
VERSION=$("$PIXLIFT" --version) || die "$PIXLIFT does not run"
say "installed $VERSION at $PIXLIFT"

mkdir -p "$(dirname -- "$PLIST")" "$(dirname -- "$LOG")"
render_plist > "$PLIST.tmp"
mv -f "$PLIST.tmp" "$PLIST"
say "wrote $PLIST"

if [ "$START" = yes ]; then
    DOMAIN=gui/$(id -u)
    launchctl bootout "$DOMAIN/$LABEL" >/dev/null 2>&1 || true  # an older copy: replace it
    launchctl bootstrap "$DOMAIN" "$PLIST"
    say "started; it starts again at every login (launchctl print $DOMAIN/$LABEL)"
else
    say "not started now (--no-start); it starts at your next login"
fi
say "uninstall with: $HERE/uninstall-macos.sh (add --purge to delete your pixlift data too)"
