#!/bin/sh
# Remove what install-linux.sh installed: stop pixlift, remove the systemd user unit, the autostart entry, the
# program (its virtual environment, or its pipx install) and the ~/.local/bin/pixlift link.
#
# Your pixlift data (config.toml, token, upload history, files kept by the "local" profile) stays in
# $XDG_DATA_HOME/pixlift unless you pass --purge.
#
# usage: uninstall-linux.sh [--purge]
#   --purge      also delete $XDG_DATA_HOME/pixlift (settings, history and locally stored uploads)
#   -h, --help   show this help
set -eu

usage() { sed -n '2,/^set -eu/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }
say() { printf 'pixlift: %s\n' "$*"; }
die() { printf 'pixlift: %s\n' "$*" >&2; exit 1; }

CONFIG_HOME=${XDG_CONFIG_HOME:-$HOME/.config}
DATA_HOME=${XDG_DATA_HOME:-$HOME/.local/share}
VENV=${PIXLIFT_VENV:-$DATA_HOME/pixlift-venv}
DATA=$DATA_HOME/pixlift
UNIT=$CONFIG_HOME/systemd/user/pixlift.service
AUTOSTART=$CONFIG_HOME/autostart/pixlift.desktop
BIN_DIR=$HOME/.local/bin
PURGE=no

while [ $# -gt 0 ]; do
    case $1 in
        --purge) PURGE=yes ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
done

# -- stop it -----------------------------------------------------------------------------------------------------
HAVE_SYSTEMD=no
if command -v systemctl >/dev/null 2>&1 && systemctl --user show-environment >/dev/null 2>&1; then
    HAVE_SYSTEMD=yes
    systemctl --user disable --now pixlift.service >/dev/null 2>&1 || true
fi
# A copy started by the autostart entry or by hand: daemon.json names its pid; SIGTERM saves and exits.
INFO=${PIXLIFT_HOME:-$DATA}/daemon.json
if [ -f "$INFO" ]; then
    PID=$(sed -n 's/.*"pid": *\([0-9][0-9]*\).*/\1/p' "$INFO")
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null && grep -q pixlift "/proc/$PID/cmdline" 2>/dev/null; then
        say "stopping pixlift (pid $PID)"
        kill -TERM "$PID"
        i=0
        while kill -0 "$PID" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    fi
fi

# -- the hotkey install-linux.sh --hotkey bound ---------------------------------------------------------------------
MEDIA_KEYS=org.gnome.settings-daemon.plugins.media-keys
KEY_PATH=/org/gnome/settings-daemon/plugins/media-keys/custom-keybindings/pixlift-clipboard/
if command -v gsettings >/dev/null 2>&1 && gsettings list-schemas 2>/dev/null | grep -qx "$MEDIA_KEYS"; then
    LIST=$(gsettings get "$MEDIA_KEYS" custom-keybindings)
    case $LIST in
        *"'$KEY_PATH'"*)
            REST=$(printf '%s' "$LIST" | sed -e "s|'$KEY_PATH'||" -e 's/\[, */[/' -e 's/, *\]/]/' -e 's/, *,/,/')
            [ "$REST" = "[]" ] && REST="@as []"
            gsettings set "$MEDIA_KEYS" custom-keybindings "$REST"
            for key in name command binding; do
                gsettings reset "$MEDIA_KEYS.custom-keybinding:$KEY_PATH" "$key"
            done
            say "removed the pixlift hotkey" ;;
    esac
fi
if command -v xfconf-query >/dev/null 2>&1; then
    xfconf-query -c xfce4-keyboard-shortcuts -l -v 2>/dev/null | while read -r prop value; do
        case $prop:$value in
            /commands/custom/*:*"upload --clipboard --copy"*)
                xfconf-query -c xfce4-keyboard-shortcuts -p "$prop" -r && say "removed the pixlift hotkey $prop" ;;
        esac
    done
fi

# -- remove it ---------------------------------------------------------------------------------------------------
if [ -e "$UNIT" ]; then
    rm -f "$UNIT"
    say "removed $UNIT"
    [ "$HAVE_SYSTEMD" = no ] || systemctl --user daemon-reload || true
fi
if [ -e "$AUTOSTART" ]; then
    rm -f "$AUTOSTART"
    say "removed $AUTOSTART"
fi
if [ -L "$BIN_DIR/pixlift" ]; then
    case $(readlink "$BIN_DIR/pixlift") in
        "$VENV"/*) rm -f "$BIN_DIR/pixlift"; say "removed $BIN_DIR/pixlift" ;;
    esac
fi
if [ -f "$VENV/pyvenv.cfg" ]; then
    rm -rf "$VENV"
    say "removed $VENV"
fi
if command -v pipx >/dev/null 2>&1 && pipx list --short 2>/dev/null | grep -q '^pixlift '; then
    pipx uninstall pixlift
fi

# -- the user's data ---------------------------------------------------------------------------------------------
if [ "$PURGE" = yes ]; then
    if [ -d "$DATA" ]; then
        rm -rf "$DATA"
        say "deleted your pixlift data in $DATA"
    fi
    if [ -n "${PIXLIFT_HOME:-}" ]; then
        say "note: PIXLIFT_HOME is set; $PIXLIFT_HOME was left alone (delete it yourself if you want)"
    fi
elif [ -d "$DATA" ]; then
    say "kept your pixlift data in $DATA (run with --purge to delete it)"
fi
say "uninstalled"
