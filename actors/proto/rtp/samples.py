"""A bounded log of timing samples (seconds) with percentiles: RTP pacing lateness, echo RTT."""

from __future__ import annotations

from collections import deque

import attrs
import numpy as np

__all__ = ["SampleLog"]


@attrs.define
class SampleLog:
    """The last ``limit`` samples (seconds)."""

    limit: int = 20_000
    samples: deque[float] = attrs.field(factory=deque)

    def add(self, value: float) -> None:
        self.samples.append(value)
        if len(self.samples) > self.limit:
            self.samples.popleft()

    def percentile(self, q: float) -> float:
        return float(np.percentile(np.fromiter(self.samples, float), q)) if self.samples else 0.0
