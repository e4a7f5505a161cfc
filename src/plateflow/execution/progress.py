"""Progress of a run: tqdm bars when tqdm is installed, plain lines otherwise, nothing when quiet.

One bar counts the plate's wells; below it, each well in flight has its own
bar of steps (``A01 2/4 Remove background``), removed when the well ends.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import IO, Any

__all__ = ["Progress"]


def _tqdm_class() -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


class Progress:
    """Reports wells and steps; safe to call from the listener thread and the main thread.

    Args:
        total: wells in the run.
        enabled: ``False`` reports nothing (``--quiet``).
        stream: where to write (stderr by default).
        description: the wells bar's label.
        bars: use tqdm bars when tqdm is installed; ``False`` prints plain lines.
    """

    def __init__(
        self,
        total: int,
        *,
        enabled: bool = True,
        stream: IO[str] | None = None,
        description: str = "wells",
        bars: bool = True,
    ) -> None:
        self.total = total
        self.enabled = enabled and total > 0
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self._lock = threading.Lock()
        self._tqdm = _tqdm_class() if bars and self.enabled else None
        self._bar: Any = None
        self._well_bars: dict[str, Any] = {}  # well -> its step bar
        self._started = time.perf_counter()
        if self._tqdm is not None:
            self._bar = self._tqdm(total=total, desc=description, unit="well", file=self.stream, position=0, dynamic_ncols=True)

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def _free_position(self) -> int:
        """The first screen row below the wells bar that no well's bar holds."""
        taken = {bar.pos for bar in self._well_bars.values()}
        return next(row for row in range(1, len(taken) + 2) if row not in taken and -row not in taken)

    def step(self, well: str, index: int, count: int, name: str) -> None:
        """Well ``well`` starts step ``index`` (0-based) of ``count``, called ``name``."""
        if not self.enabled:
            return
        with self._lock:
            if self._tqdm is None:
                self._line(f"  well {well}: step {index + 1}/{count} {name}")
                return
            bar = self._well_bars.get(well)
            if bar is None:
                bar = self._tqdm(
                    total=count,
                    desc=well,
                    unit="step",
                    file=self.stream,
                    position=self._free_position(),
                    leave=False,
                    dynamic_ncols=True,
                )
                self._well_bars[well] = bar
            bar.n = index  # steps finished before this one
            bar.set_postfix_str(f"{index + 1}/{count} {name}", refresh=False)
            bar.refresh()

    def well_done(self, well: str, ok: bool, seconds: float, message: str = "") -> None:
        if not self.enabled:
            return
        with self._lock:
            self.done += 1
            status = "done" if ok else f"FAILED: {message}"
            bar = self._well_bars.pop(well, None)
            if bar is not None:
                bar.close()
            if self._bar is not None:
                self._bar.update(1)
                if not ok:
                    self._bar.write(f"well {well} {status}", file=self.stream)
            else:
                self._line(f"[{self.done}/{self.total}] well {well} {status} ({seconds:.1f} s)")

    def close(self) -> None:
        with self._lock:
            for bar in self._well_bars.values():
                bar.close()
            self._well_bars.clear()
            if self._bar is not None:
                self._bar.close()
            self._bar = None
