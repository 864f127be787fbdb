"""Windows over a stream of logged rows: the last N rows, or the rows of the last T seconds."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.errors import InvalidInputError

__all__ = ["Window"]


@dataclass(frozen=True)
class Window:
    """A window by count (``Window(rows=1000)``) or by time (``Window(seconds=3600)``).

    A live monitor looks at the *latest* window (sliding); :meth:`split` cuts a whole log into
    consecutive windows (tumbling) for performance over time. Times are the log's ``ts`` column
    (seconds since the epoch); a time window ends at the newest row, not at the wall clock, so a
    quiet deployment keeps its last window.
    """

    rows: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if (self.rows is None) == (self.seconds is None):
            raise InvalidInputError("a window is either rows=N or seconds=T: give exactly one")
        if self.rows is not None and self.rows <= 0:
            raise InvalidInputError(f"a window needs at least one row, got rows={self.rows}")
        if self.seconds is not None and self.seconds <= 0:
            raise InvalidInputError(f"a window needs a positive duration, got seconds={self.seconds}")

    @classmethod
    def parse(cls, spec: Window | int | str | _dt.timedelta) -> Window:
        """``1000`` or ``"1000"`` (rows), ``"15min"``, ``"2h"``, ``"1d"`` or a timedelta (time)."""
        if isinstance(spec, Window):
            return spec
        if isinstance(spec, bool):
            raise InvalidInputError("a window is a row count or a duration, not a boolean")
        if isinstance(spec, int):
            return cls(rows=spec)
        if isinstance(spec, _dt.timedelta):
            return cls(seconds=spec.total_seconds())
        text = str(spec).strip()
        if text.isdigit():
            return cls(rows=int(text))
        try:
            return cls(seconds=pd.Timedelta(text).total_seconds())
        except ValueError as exc:
            raise InvalidInputError(
                f"{spec!r} is not a window: use a row count (1000) or a duration ('15min', '2h', '1d')"
            ) from exc

    def __str__(self) -> str:
        if self.rows is not None:
            return f"last {self.rows} rows"
        return f"last {pd.Timedelta(seconds=self.seconds or 0)}"

    def latest(self, frame: pd.DataFrame, time_column: str = "ts") -> pd.DataFrame:
        """The newest rows of ``frame`` (in arrival order) that fall in this window."""
        if self.rows is not None:
            return frame.iloc[-self.rows:] if len(frame) > self.rows else frame
        if not len(frame):
            return frame
        ts = frame[time_column].to_numpy(dtype=np.float64)
        return frame[ts > ts.max() - float(self.seconds or 0)]

    def start_of_latest(self, ts: np.ndarray) -> int:
        """Position of the first row of the latest window in ``ts`` (ascending arrival order)."""
        if self.rows is not None:
            return max(0, len(ts) - self.rows)
        if not len(ts):
            return 0
        return int(np.searchsorted(ts, ts.max() - float(self.seconds or 0), side="right"))

    def split(self, frame: pd.DataFrame, time_column: str = "ts") -> list[pd.DataFrame]:
        """Consecutive windows over all of ``frame``: blocks of ``rows`` rows (the last may be
        shorter), or calendar-aligned periods of ``seconds`` (empty periods left out)."""
        if not len(frame):
            return []
        if self.rows is not None:
            return [frame.iloc[i:i + self.rows] for i in range(0, len(frame), self.rows)]
        ts = frame[time_column].to_numpy(dtype=np.float64)
        period = np.floor(ts / float(self.seconds or 1))
        return [group for _, group in frame.groupby(period, sort=True)]
