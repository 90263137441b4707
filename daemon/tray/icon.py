"""The icon's picture, drawn with Pillow from a ``TrayState`` (pure: no pystray, no threads)."""

from __future__ import annotations

from PIL import Image, ImageDraw

from .state import TrayState

BLUE, AMBER, GREEN, RED, WHITE = (37, 99, 235), (217, 119, 6), (22, 163, 74), (220, 38, 38), (255, 255, 255)
TRACK = (203, 213, 225)


def icon_key(state: TrayState) -> tuple[str, int, bool]:
    """What the picture depends on; progress in 5 % steps so it is redrawn only when it visibly changes."""
    if state.active:
        return "uploading", state.percent // 5 * 5, state.failed > 0
    if state.paused:
        return "paused", 0, state.failed > 0
    return "idle", 0, state.failed > 0


def render_icon(kind: str, percent: int = 0, attention: bool = False, size: int = 64) -> Image.Image:
    """idle: a blue disc with an up arrow; uploading: the same inside a green progress ring; paused: amber with
    two bars; attention (something failed): a red badge with "!" in the top right corner."""
    s = size / 64
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)

    def box(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
        return x0 * s, y0 * s, x1 * s, y1 * s

    if kind == "uploading":
        draw.ellipse(box(1, 1, 63, 63), fill=TRACK)
        if percent > 0:
            draw.pieslice(box(1, 1, 63, 63), -90, -90 + 360 * min(percent, 100) / 100, fill=GREEN)
        draw.ellipse(box(9, 9, 55, 55), fill=BLUE)
    else:
        draw.ellipse(box(3, 3, 61, 61), fill=AMBER if kind == "paused" else BLUE)
    if kind == "paused":
        draw.rectangle(box(22, 19, 29, 45), fill=WHITE)
        draw.rectangle(box(35, 19, 42, 45), fill=WHITE)
    else:
        arrow = [(32, 15), (46, 31), (37, 31), (37, 48), (27, 48), (27, 31), (18, 31)]
        draw.polygon([(x * s, y * s) for x, y in arrow], fill=WHITE)
    if attention:
        draw.ellipse(box(38, 0, 64, 26), fill=RED, outline=WHITE, width=max(1, round(2 * s)))
        draw.rectangle(box(49, 5, 53, 16), fill=WHITE)
        draw.rectangle(box(49, 18, 53, 21), fill=WHITE)
    return image
