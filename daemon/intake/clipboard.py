"""The desktop's clipboard: read an image from it (tray: "Upload image from clipboard"), put a link on it.

No Python library reads images from every desktop's clipboard, so this asks the tools the desktop has:

    Linux, Wayland   wl-paste / wl-copy (wl-clipboard); xclip through XWayland when wl-clipboard is missing
    Linux, X11       xclip (the TARGETS list first, then the best image type); xsel writes text too
    macOS            Pillow's ImageGrab.grabclipboard reads; pbcopy writes
    Windows          Pillow's ImageGrab.grabclipboard reads; clip.exe writes

Every failure is a ``ClipboardError`` whose message says what to do (install a tool, copy an image first);
the tray shows it as a notification.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import ClipboardError

TOOL_TIMEOUT_S = 10.0
# What a screenshot tool or a browser offers, best first. Formats the web shows as they are stay as they
# are; the others (BMP, TIFF) become PNG so the link opens anywhere.
KEEP = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif"}
CONVERT = ("image/bmp", "image/x-bmp", "image/tiff")
NO_TOOL = ("Reading the clipboard needs xclip (X11) or wl-clipboard (Wayland). Install one (for example "
           "'sudo apt install xclip wl-clipboard') and try again.")


@dataclass(frozen=True)
class ClipboardImage:
    data: bytes
    extension: str  # ".png", ".jpg", ...

    def name(self, when: float | None = None) -> str:
        """A file name for the upload: ``clipboard-20250102-030405.png`` (local time)."""
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
        return f"clipboard-{stamp}{self.extension}"


def read_image(env: Mapping[str, str] | None = None) -> ClipboardImage:
    """The image on the clipboard, or ClipboardError with a message a person can act on."""
    env = os.environ if env is None else env
    if sys.platform in ("darwin", "win32"):
        return _grab_with_pillow()
    wayland, x11 = env.get("WAYLAND_DISPLAY"), env.get("DISPLAY")
    if not (wayland or x11):
        raise ClipboardError("There is no graphical session (DISPLAY and WAYLAND_DISPLAY are unset), so there is "
                             "no clipboard to read.")
    if wayland and _which("wl-paste", env):
        return _read_wayland(env)
    if x11 and _which("xclip", env):
        return _read_x11(env)
    raise ClipboardError(NO_TOOL)


def copy_text(text: str, env: Mapping[str, str] | None = None) -> None:
    """Put ``text`` on the clipboard (it stays there after pixlift exits)."""
    env = os.environ if env is None else env
    if sys.platform == "darwin":
        command = ["pbcopy"]
    elif sys.platform == "win32":
        command = ["clip"]
    elif env.get("WAYLAND_DISPLAY") and _which("wl-copy", env):
        command = ["wl-copy"]
    elif env.get("DISPLAY") and _which("xclip", env):
        command = ["xclip", "-selection", "clipboard", "-in"]
    elif env.get("DISPLAY") and _which("xsel", env):
        command = ["xsel", "--clipboard", "--input"]
    elif not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        raise ClipboardError("There is no graphical session, so there is no clipboard to copy the link to.")
    else:
        raise ClipboardError("Copying needs xclip or xsel (X11) or wl-clipboard (Wayland). Install one (for "
                             "example 'sudo apt install xclip wl-clipboard') and try again.")
    # xclip, xsel and wl-copy fork a child that keeps serving the selection: give them no pipe to hold open
    # except stdin, or waiting for this call would wait for the next copy by someone else.
    try:
        done = subprocess.run(command, input=text.encode(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=dict(env), timeout=TOOL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ClipboardError(f"Could not copy to the clipboard with {command[0]} ({exc}).") from exc
    if done.returncode != 0:
        raise ClipboardError(f"Could not copy to the clipboard: {command[0]} exited with {done.returncode}.")


# -- Linux ---------------------------------------------------------------------------------------------------
def _read_x11(env: Mapping[str, str]) -> ClipboardImage:
    base = ["xclip", "-selection", "clipboard", "-o"]
    listed = _run([*base, "-t", "TARGETS"], env, allow_failure=True)  # fails when nobody owns the clipboard
    types = listed.decode(errors="replace").split() if listed is not None else []
    chosen = _choose(types)
    return _convert(chosen, _run([*base, "-t", chosen], env) or b"")


def _read_wayland(env: Mapping[str, str]) -> ClipboardImage:
    listed = _run(["wl-paste", "--list-types"], env, allow_failure=True)  # fails when the clipboard is empty
    types = listed.decode(errors="replace").split() if listed is not None else []
    chosen = _choose(types)
    return _convert(chosen, _run(["wl-paste", "--no-newline", "--type", chosen], env) or b"")


def _choose(types: Sequence[str]) -> str:
    for wanted in (*KEEP, *CONVERT):
        if wanted in types:
            return wanted
    images = [t for t in types if t.startswith("image/")]
    if images:
        return images[0]
    if not types:
        what = "it is empty"
    elif any(t in types for t in ("UTF8_STRING", "STRING", "TEXT", "text/plain", "text/plain;charset=utf-8")):
        what = "it holds text"
    else:
        formats = ", ".join(t for t in types if "/" in t)[:80]
        what = f"it holds {formats}" if formats else "it holds no image format"
    raise ClipboardError(f"The clipboard holds no image ({what}). Copy an image or take a screenshot to the "
                         "clipboard, then try again.")


def _run(command: list[str], env: Mapping[str, str], *, allow_failure: bool = False) -> bytes | None:
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, env=dict(env),
                              timeout=TOOL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ClipboardError(f"{command[0]} did not answer within {TOOL_TIMEOUT_S:.0f} s; the application that "
                             "owns the clipboard may be busy. Try again.") from exc
    except OSError as exc:
        raise ClipboardError(f"Could not run {command[0]} ({exc.strerror}).") from exc
    if done.returncode != 0:
        if allow_failure:
            return None
        detail = done.stderr.decode(errors="replace").strip()[:200]
        raise ClipboardError(f"Could not read the clipboard: {command[0]} exited with {done.returncode}"
                             + (f" ({detail})." if detail else "."))
    return done.stdout


def _which(tool: str, env: Mapping[str, str]) -> str | None:
    return shutil.which(tool, path=env.get("PATH", os.defpath))


# -- both ------------------------------------------------------------------------------------------------------
def _convert(mime: str, data: bytes) -> ClipboardImage:
    if not data:
        raise ClipboardError("The clipboard's image is empty. Copy the image again and retry.")
    if mime in KEEP:
        return ClipboardImage(data, KEEP[mime])
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return _png(image)
    except (UnidentifiedImageError, OSError) as exc:
        raise ClipboardError(f"The clipboard's image ({mime}) could not be read: {exc}.") from exc


def _png(image: object) -> ClipboardImage:
    from PIL import Image

    assert isinstance(image, Image.Image)
    out = io.BytesIO()
    image.save(out, "PNG")
    return ClipboardImage(out.getvalue(), ".png")


# -- macOS and Windows -----------------------------------------------------------------------------------------
def _grab_with_pillow() -> ClipboardImage:
    from PIL import Image, ImageGrab, UnidentifiedImageError

    try:
        grabbed = ImageGrab.grabclipboard()
    except Exception as exc:  # Pillow raises plain OSError/NotImplementedError by platform; translate once here
        raise ClipboardError(f"Could not read the clipboard: {exc}") from exc
    if isinstance(grabbed, Image.Image):
        return _png(grabbed)
    if isinstance(grabbed, list):  # files copied in Finder / Explorer: the first one that is an image
        for path in grabbed:
            try:
                with Image.open(path) as image:
                    fmt = (image.format or "").lower()
                    mime = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}
                    if fmt in mime:
                        with open(path, "rb") as fh:
                            return ClipboardImage(fh.read(), KEEP[mime[fmt]])
                    return _png(image)
            except (UnidentifiedImageError, OSError):
                continue
    raise ClipboardError("The clipboard holds no image. Copy an image or take a screenshot to the clipboard, "
                         "then try again.")
