"""Exponential backoff with full jitter, shared by the engine (whole attempts) and providers (single parts)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    attempts: int = 3
    base_s: float = 0.5
    max_s: float = 8.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based): random in [0, base * 2^(n-1)]."""
        return random.uniform(0, min(self.max_s, self.base_s * 2 ** (attempt - 1)))
