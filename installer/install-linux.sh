#!/bin/sh
# Install pixlift for the current user and start it at every login.
#
# It installs pixlift into a virtual environment of its own (or with pipx), writes a systemd user unit and an
# XDG autostart entry, and enables the unit when the user has a systemd user manager. Running it again
# upgrades pixlift and rewrites the files. Nothing outside your home folder is touched; no root needed.
#
# usage: install-linux.sh [options] [SOURCE]
#   SOURCE          what pip installs: a wheel, a source folder, or a requirement (default: pixlift, from PyPI)
#   --venv          use a virtual environment even when pipx is present (the default without pipx)
#   --pipx          use pipx
#   --isolated      hide the system's Python packages from pixlift's environment. By default they are visible,
#                   so that your distribution's PyGObject (python3-gi) gives the tray its menu and notifications.
#   --python PATH   the Python 3.11+ to use (default: $PIXLIFT_PYTHON, else python3)
#   --no-start      do not start pixlift now (it still starts at the next login)
#   --hotkey KEYS   bind KEYS (e.g. '<Super><Shift>u') to "pixlift upload --clipboard --copy": screenshot to the
#                   clipboard, press the keys, paste the link. GNOME (and desktops built on its settings) and
#                   Xfce. Without it, the installer asks when run in a terminal on such a desktop.
#   --no-hotkey     do not ask
#   -h, --help      show this help
#
# Honours HOME, XDG_CONFIG_HOME and XDG_DATA_HOME. The environment goes to $XDG_DATA_HOME/pixlift-venv
# (or $PIXLIFT_VENV); pixlift's own data (config, token, history) stays in $XDG_DATA_HOME/pixlift.
set -eu

usage() { sed -n '2,/^set -eu/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }
say() { printf 'pixlift: %s\n' "$*"; }
die() { printf 'pixlift: %s\n' "$*" >&2; exit 1; }

HERE=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
CONFIG_HOME=${XDG_CONFIG_HOME:-$HOME/.config}
DATA_HOME=${XDG_DATA_HOME:-$HOME/.local/share}
VENV=${PIXLIFT_VENV:-$DATA_HOME/pixlift-venv}
UNIT=$CONFIG_HOME/systemd/user/pixlift.service
AUTOSTART=$CONFIG_HOME/autostart/pixlift.desktop
BIN_DIR=$HOME/.local/bin

PYTHON=${PIXLIFT_PYTHON:-python3}
SOURCE=pixlift
MODE=auto
SITE=--system-site-packages
START=yes
HOTKEY=ask
DEFAULT_HOTKEY='<Super><Shift>u'

while [ $# -gt 0 ]; do
    case $1 in
        --venv) MODE=venv ;;
        --pipx) MODE=pipx ;;
        --isolated) SITE= ;;
        --python) [ $# -ge 2 ] || die "--python needs a path"; PYTHON=$2; shift ;;
        --no-start) START=no ;;
        --hotkey) [ $# -ge 2 ] || die "--hotkey needs keys, e.g. '<Super><Shift>u'"; HOTKEY=$2; shift ;;
        --no-hotkey) HOTKEY=no ;;
        -h|--help) usage; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) SOURCE=$1 ;;
    esac
    shift
done

# A local wheel or folder: give pip an absolute path, so that it is not mistaken for a name on PyPI.
if [ -e "$SOURCE" ]; then
    SOURCE=$(CDPATH='' cd -- "$(dirname -- "$SOURCE")" && pwd)/$(basename -- "$SOURCE")
fi
if [ "$MODE" = auto ]; then
    if command -v pipx >/dev/null 2>&1; then MODE=pipx; else MODE=venv; fi
fi

command -v "$PYTHON" >/dev/null 2>&1 || die "no $PYTHON found; install Python 3.11 or newer, or pass --python PATH"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "pixlift needs Python 3.11 or newer; $PYTHON is $("$PYTHON" -c 'import sys; print(sys.version.split()[0])'). Pass --python PATH."

# -- install the program -----------------------------------------------------------------------------------------
if [ "$MODE" = pipx ]; then
    command -v pipx >/dev/null 2>&1 || die "--pipx given, but pipx is not installed"
    say "installing $SOURCE with pipx"
    # shellcheck disable=SC2086  # $SITE is one option or nothing
    pipx install --force --python "$PYTHON" $SITE "$SOURCE"
    PIPX_BIN=$(pipx environment --value PIPX_BIN_DIR 2>/dev/null || printf '%s' "$BIN_DIR")
    PIXLIFT=$PIPX_BIN/pixlift
else
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating the environment $VENV"
        mkdir -p "$(dirname -- "$VENV")"
        # shellcheck disable=SC2086  # $SITE is one option or nothing
        "$PYTHON" -m venv $SITE "$VENV"
    fi
    say "installing $SOURCE into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "$SOURCE"
    if [ -e "$SOURCE" ]; then
        # pip calls a local wheel or folder of an already installed version "satisfied": put this one in anyway.
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$SOURCE"
    fi
    PIXLIFT=$VENV/bin/pixlift
    # `pixlift` on the command line too (~/.local/bin is on PATH in most distributions).
    mkdir -p "$BIN_DIR"
    if [ ! -e "$BIN_DIR/pixlift" ] || [ -L "$BIN_DIR/pixlift" ]; then
        ln -sfn "$PIXLIFT" "$BIN_DIR/pixlift"
    else
        say "note: $BIN_DIR/pixlift exists and is not ours; left it alone"
    fi
fi
[ -x "$PIXLIFT" ] || die "the install did not produce $PIXLIFT"
VERSION=$("$PIXLIFT" --version) || die "$PIXLIFT does not run"
say "installed $VERSION at $PIXLIFT"

# -- start at login ----------------------------------------------------------------------------------------------
case $PIXLIFT in
    *[\"\\\`\$]*) die "the install path $PIXLIFT holds a character (\" \\ \` \$) that unit and desktop files cannot quote" ;;
esac
# Both file formats take a double-quoted path; both read % as the start of a specifier.
QUOTED=$(printf '"%s"' "$PIXLIFT" | sed 's/%/%%/g')
SED_SAFE=$(printf '%s' "$QUOTED" | sed 's/[&|]/\\&/g')

render() {  # render TEMPLATE DEST
    mkdir -p "$(dirname -- "$2")"
    sed "s|@EXEC@|$SED_SAFE|g" "$HERE/$1" > "$2.tmp"
    mv -f "$2.tmp" "$2"
}

render pixlift.service.in "$UNIT"
say "wrote $UNIT"

SYSTEMD=no
if command -v systemctl >/dev/null 2>&1 && systemctl --user show-environment >/dev/null 2>&1; then
    systemctl --user daemon-reload
    if systemctl --user enable pixlift.service >/dev/null 2>&1; then
        SYSTEMD=yes
        say "enabled the systemd user unit pixlift.service (starts with your graphical session)"
    else
        say "note: systemctl --user enable pixlift.service failed; the autostart entry starts pixlift instead"
    fi
else
    say "no systemd user manager here; the autostart entry starts pixlift at login"
fi

render pixlift.desktop.in "$AUTOSTART"
if [ "$SYSTEMD" = yes ]; then
    # The unit starts pixlift: tell the desktops that also read autostart entries to leave this one alone
    # (GNOME under systemd, and systemd's own xdg-autostart-generator used by KDE Plasma).
    printf 'X-GNOME-HiddenUnderSystemd=true\nX-systemd-skip=true\n' >> "$AUTOSTART"
fi
say "wrote $AUTOSTART"

# -- a screenshot-to-link hotkey ------------------------------------------------------------------------------------
MEDIA_KEYS=org.gnome.settings-daemon.plugins.media-keys
KEY_PATH=/org/gnome/settings-daemon/plugins/media-keys/custom-keybindings/pixlift-clipboard/
COMMAND="$QUOTED upload --clipboard --copy"
gvariant() { printf "'%s'" "$(printf '%s' "$1" | sed -e "s/\\\\/\\\\\\\\/g" -e "s/'/\\\\'/g")"; }
desktop_keys() {  # which settings this desktop reads its custom shortcuts from
    if command -v gsettings >/dev/null 2>&1 && gsettings list-schemas 2>/dev/null | grep -qx "$MEDIA_KEYS"; then
        echo gnome
    elif command -v xfconf-query >/dev/null 2>&1 && xfconf-query -c xfce4-keyboard-shortcuts -l >/dev/null 2>&1; then
        echo xfce
    fi
}
bind_hotkey() {  # bind_hotkey KEYS
    case $(desktop_keys) in
        gnome)
            LIST=$(gsettings get "$MEDIA_KEYS" custom-keybindings)
            case $LIST in
                *"'$KEY_PATH'"*) ;;
                "@as []"|"[]") gsettings set "$MEDIA_KEYS" custom-keybindings "['$KEY_PATH']" ;;
                *) gsettings set "$MEDIA_KEYS" custom-keybindings "${LIST%]}, '$KEY_PATH']" ;;
            esac
            gsettings set "$MEDIA_KEYS.custom-keybinding:$KEY_PATH" name "'pixlift: upload the clipboard image'"
            gsettings set "$MEDIA_KEYS.custom-keybinding:$KEY_PATH" command "$(gvariant "$COMMAND")"
            gsettings set "$MEDIA_KEYS.custom-keybinding:$KEY_PATH" binding "$(gvariant "$1")"
            say "bound $1 to: $COMMAND (Settings > Keyboard > Custom Shortcuts to change it)" ;;
        xfce)
            xfconf-query -c xfce4-keyboard-shortcuts -p "/commands/custom/$1" -n -t string -s "$COMMAND"
            say "bound $1 to: $COMMAND (Keyboard settings > Application Shortcuts to change it)" ;;
        *)
            say "no GNOME or Xfce shortcut settings here; bind $COMMAND to a key in your desktop's keyboard" \
                "settings (the README shows how for KDE, macOS and Windows)" ;;
    esac
}
case $HOTKEY in
    no) ;;
    ask)
        if [ -t 0 ] && [ -t 1 ] && [ -n "$(desktop_keys)" ]; then
            printf 'pixlift: bind Super+Shift+U to upload the clipboard image and copy its link? [y/N] '
            read -r REPLY || REPLY=
            case $REPLY in
                [yY]*) bind_hotkey "$DEFAULT_HOTKEY" ;;
                *) say "no hotkey bound (run again with --hotkey KEYS to bind one)" ;;
            esac
        elif [ -t 1 ]; then
            say "tip: bind $COMMAND to a key in your desktop's keyboard settings for screenshot-to-link"
        fi ;;
    *) bind_hotkey "$HOTKEY" ;;
esac

# -- start now ---------------------------------------------------------------------------------------------------
if [ "$START" = no ]; then
    say "not started now (--no-start); it starts at your next login"
elif [ "$SYSTEMD" = yes ] && systemctl --user is-active --quiet graphical-session.target; then
    systemctl --user restart pixlift.service
    say "started: systemctl --user status pixlift"
elif [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
    if "$PIXLIFT" status >/dev/null 2>&1; then
        say "pixlift is already running; Quit it from the tray and start it again to use the new version"
    else
        nohup "$PIXLIFT" serve >/dev/null 2>&1 &
        say "started in the background (pid $!)"
    fi
else
    say "no graphical session here; pixlift starts at your next desktop login"
fi
say "uninstall with: $HERE/uninstall-linux.sh (add --purge to delete your pixlift data too)"
