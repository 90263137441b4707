#!/bin/sh
# Remove what install-macos.sh installed: stop pixlift, unload and delete its LaunchAgent, delete its virtual
# environment. Your pixlift data (~/Library/Application Support/pixlift: settings, token, upload history, files
# kept by the "local" profile) stays unless you pass --purge.
#
# usage: uninstall-macos.sh [--purge]
#   --purge      also delete ~/Library/Application Support/pixlift
#   -h, --help   show this help
set -eu

usage() { sed -n '2,/^set -eu/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }
say() { printf 'pixlift: %s\n' "$*"; }
die() { printf 'pixlift: %s\n' "$*" >&2; exit 1; }

LABEL=com.pixlift.daemon
VENV=${PIXLIFT_VENV:-$HOME/Library/Application Support/pixlift-venv}
DATA=$HOME/Library/Application Support/pixlift
PLIST=$HOME/Library/LaunchAgents/$LABEL.plist
PURGE=no

while [ $# -gt 0 ]; do
    case $1 in
        --purge) PURGE=yes ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
done

# bootout sends SIGTERM: pixlift saves the state of every upload and exits.
if command -v launchctl >/dev/null 2>&1; then
    launchctl bootout "gui/$(id -u)/$LABEL" >/dev/null 2>&1 || true
fi
if [ -e "$PLIST" ]; then
    rm -f "$PLIST"
    say "removed $PLIST"
fi
if [ -f "$VENV/pyvenv.cfg" ]; then
    rm -rf "$VENV"
    say "removed $VENV"
fi
if [ "$PURGE" = yes ]; then
    if [ -d "$DATA" ]; then
        rm -rf "$DATA"
        say "deleted your pixlift data in $DATA"
    fi
elif [ -d "$DATA" ]; then
    say "kept your pixlift data in $DATA (run with --purge to delete it)"
fi
say "uninstalled"
