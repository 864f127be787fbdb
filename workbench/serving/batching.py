"""Adaptive batching: requests that arrive while the model is busy are predicted together.

One prediction runs at a time, on one worker thread (models are CPU-bound and not all are
thread-safe). While it runs, new requests queue; when it finishes, everything queued that can go
together (same requested outputs and parameters), up to ``max_batch_size`` rows, becomes the next
batch. A lone request is predicted at once, so batching costs a single client nothing. When the
previous batch had company and fewer requests are queued than it had, the next batch waits for as
many, for at most half the model's recent prediction time: a model whose call costs about the same
for 1 or 16 rows (a forest: about 2 ms in scikit-learn) then answers many clients with fewer calls,
which on a busy machine shortens each client's wait more than it lengthens it.
``max_wait_ms > 0`` lets every batch wait that long for company instead. A model whose answers depend on
the rows predicted with them (float32 networks; see :mod:`workbench.composition`) is predicted one
request at a time, so its answers never depend on who else was asking.

Each request's answer is released only after its prediction-log record is committed (see
:mod:`workbench.predlog`); committing happens on the log's own thread while the next batch
is predicted. The answer is encoded meanwhile: once the log's thread has taken the records, each
request's ``answer`` function turns its prediction into what will be sent, and that is sent once
the commit is done (or an error, if it failed).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from workbench._ids import new_id
from workbench.errors import InvalidInputError, SchemaError, StoreUnavailableError, WorkbenchError
from workbench.serving.codecs import InputBatch
from workbench.serving.metrics import ServerMetrics
from workbench.serving.model import Prediction, ServedModel
from workbench.predlog import LogRecord, LogWriter

__all__ = ["Batcher", "RequestInfo"]


@dataclass(frozen=True)
class RequestInfo:
    """Who asked, how, and when: what the prediction log records besides the data."""

    protocol: str
    request_id: str = field(default_factory=new_id)
    started: float = field(default_factory=time.perf_counter)


T = TypeVar("T")


@dataclass
class _Item:
    batch: InputBatch
    key: tuple[Any, ...]
    outputs: tuple[str, ...]
    params: Mapping[str, Any] | None
    info: RequestInfo
    #: Set once predicted (or failed), while the log may still be committing the record.
    predicted: asyncio.Future[Prediction]
    #: Set once the log committed the record (or could not).
    logged: asyncio.Future[None]


def _model_failed(exc: Exception) -> WorkbenchError:
    if isinstance(exc, WorkbenchError):
        return exc
    return SchemaError(f"the model could not predict on this input: {type(exc).__name__}: {exc}")


def _jsonable_outputs(outputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, values in outputs.items():
        array = np.asarray(values)
        out[name] = np.ascontiguousarray(array) if array.dtype.kind in "biuf" else [
            v if isinstance(v, (str, int, float, bool)) or v is None else str(v) for v in array.tolist()
        ]
    return out


#: Seconds readiness stays 503 after a commit of the prediction log failed; then traffic may try
#: again (a commit that succeeds clears it, one that fails starts it over).
LOG_RETRY_SECONDS = 10.0

class Batcher:
    """Queues requests for one model, predicts them in batches, logs them, then answers them."""

    def __init__(
        self,
        model: ServedModel,
        log: LogWriter,
        metrics: ServerMetrics,
        *,
        max_batch_size: int = 256,
        max_wait_ms: float = 0.0,
    ) -> None:
        self.model = model
        self.log = log
        self.metrics = metrics
        #: When a commit of the log last failed (monotonic seconds); ``None`` once one succeeds.
        #: Readiness is 503 for :data:`LOG_RETRY_SECONDS` after it (a full disk fails every answer).
        self.log_failed_at: float | None = None
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self._pending: deque[_Item] = deque()
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self._task: asyncio.Task[None] | None = None
        #: Requests in the last batch, and the model's recent prediction time in seconds (a moving
        #: average, written by the worker thread): how long a batch may wait for company.
        self._last_group = 0
        self._predict_seconds = 0.0
        #: Resolved by the next arrival while a batch waits for company.
        self._arrival: asyncio.Future[None] | None = None
        self._labels = (model.name, model.version or "")
        self._queue_depth = metrics.queue_depth.labels(*self._labels)
        self._batch_size = metrics.batch_size.labels(*self._labels)
        self._batch_rows = metrics.batch_rows.labels(*self._labels)
        self._log_records = metrics.log_records.labels(*self._labels)

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The model's one worker thread; other model work (explanations) runs here too."""
        return self._executor

    def start(self) -> None:
        """Start the batching loop on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="batcher")

    async def stop(self) -> None:
        """Finish every queued request, then stop the loop and the worker thread."""
        while self._pending:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)

    async def infer(
        self,
        batch: InputBatch,
        info: RequestInfo,
        answer: Callable[[Prediction], T],
        outputs: Sequence[str] = (),
        params: Mapping[str, Any] | None = None,
    ) -> T:
        """Queue one request's rows; returns ``answer(prediction)`` once they are predicted and
        logged. ``answer`` runs (on the event loop) while the log commits them: encode the response
        there, and nothing of it is sent before the record is committed."""
        for name in outputs:
            if name not in self.model.output_names:
                raise InvalidInputError(f"unknown output {name!r}; this model offers {self.model.output_names}")
        loop = asyncio.get_running_loop()
        predicted: asyncio.Future[Prediction] = loop.create_future()
        logged: asyncio.Future[None] = loop.create_future()
        key = (tuple(outputs), repr(sorted((params or {}).items())))
        self._pending.append(_Item(batch, key, tuple(outputs), params, info, predicted, logged))
        self._queue_depth.set(len(self._pending))
        self._wakeup.set()
        if self._arrival is not None and not self._arrival.done():
            self._arrival.set_result(None)
        prediction = await predicted
        try:
            result = answer(prediction)
        except Exception:
            await logged  # as before the answer was encoded early: nothing is refused unlogged
            raise
        await logged
        return result

    async def run_unbatched(self, data: Any, info: RequestInfo, params: Mapping[str, Any] | None) -> Any:
        """Predict data that cannot be batched (tensor or no signature) on the worker thread, log it."""
        loop = asyncio.get_running_loop()
        try:
            raw = await loop.run_in_executor(self._executor, self.model.predict_unbatched, data, params)
        except Exception as exc:
            raise _model_failed(exc) from exc
        n_rows = len(data) if hasattr(data, "__len__") else 1
        columns, rows = _unbatched_inputs(data, self.model.feature_names)
        record = LogRecord(
            request_id=info.request_id,
            ts=time.time(),
            model_name=self.model.name,
            model_version=self.model.version,
            protocol=info.protocol,
            n_rows=n_rows,
            latency_ms=(time.perf_counter() - info.started) * 1000,
            inputs={"columns": columns, "data": rows},
            outputs={"predict": _to_list(raw)},
        )
        done: asyncio.Future[None] = loop.create_future()
        def committed(error: BaseException | None) -> None:
            self.log_failed_at = None if error is None else time.monotonic()
            loop.call_soon_threadsafe(_settle, done, None, error)

        self.log.submit([record], committed)
        await done
        return raw

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            if self.max_wait > 0:
                deadline = self._pending[0].info.started + self.max_wait if self._pending else 0
                while self._rows_pending() < self.max_batch_size and time.perf_counter() < deadline:
                    await asyncio.sleep(min(0.0005, max(deadline - time.perf_counter(), 0)))
            elif 0 < len(self._pending) < self._last_group and not self.model.per_request:
                await self._wait_for_company(loop)
            group = self._take_group()
            if not self._pending:
                self._wakeup.clear()
            self._queue_depth.set(len(self._pending))
            if not group:
                continue
            self._last_group = len(group)
            await loop.run_in_executor(self._executor, self._predict_and_log, group, loop)
            del group  # hold no request's rows while waiting for the next

    async def _wait_for_company(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait until as many requests are queued as the last batch had (or ``max_batch_size``
        rows), for at most half the model's recent prediction time."""
        deadline = loop.time() + self._predict_seconds / 2
        try:
            while len(self._pending) < self._last_group and self._rows_pending() < self.max_batch_size:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                self._arrival = loop.create_future()
                timer = loop.call_later(remaining, _settle, self._arrival, None, None)
                try:
                    await self._arrival
                finally:
                    timer.cancel()
        finally:
            self._arrival = None

    def _rows_pending(self) -> int:
        return sum(item.batch.n_rows for item in self._pending)

    def _take_group(self) -> list[_Item]:
        if not self._pending:
            return []
        first = self._pending.popleft()
        if self.model.per_request:  # its answers depend on the company: each request alone
            return [first]
        group, rows = [first], first.batch.n_rows
        keep: deque[_Item] = deque()
        while self._pending:
            item = self._pending.popleft()
            if item.key == first.key and rows + item.batch.n_rows <= self.max_batch_size:
                group.append(item)
                rows += item.batch.n_rows
            else:
                keep.append(item)
        self._pending = keep
        return group

    # -- on the worker thread -------------------------------------------------------------------

    def _predict_and_log(self, group: list[_Item], loop: asyncio.AbstractEventLoop) -> None:
        first = group[0]
        started = time.perf_counter()
        try:
            predictions: list[Prediction | WorkbenchError] = list(
                self.model.predict([i.batch for i in group], first.outputs, first.params)
            )
            took = time.perf_counter() - started
            self._predict_seconds = took if not self._predict_seconds else 0.8 * self._predict_seconds + 0.2 * took
        except Exception as exc:
            if len(group) == 1:
                predictions = [_model_failed(exc)]
            else:  # one bad request must not fail the others: predict each alone
                predictions = []
                for item in group:
                    try:
                        (p,) = self.model.predict([item.batch], item.outputs, item.params)
                        predictions.append(p)
                    except Exception as single:
                        predictions.append(_model_failed(single))
        now, wall = time.perf_counter(), time.time()
        self._batch_size.observe(len(group))
        self._batch_rows.observe(sum(i.batch.n_rows for i in group))

        records, answered = [], []
        for item, prediction in zip(group, predictions):
            if isinstance(prediction, WorkbenchError):
                loop.call_soon_threadsafe(_settle, item.predicted, None, prediction)
                continue
            records.append(
                LogRecord(
                    request_id=item.info.request_id,
                    ts=wall,
                    model_name=self.model.name,
                    model_version=self.model.version,
                    protocol=item.info.protocol,
                    n_rows=item.batch.n_rows,
                    latency_ms=(now - item.info.started) * 1000,
                    inputs=item.batch.log_inputs(),
                    outputs=_jsonable_outputs(prediction.outputs),
                )
            )
            answered.append((item, prediction))
        if not answered:
            return

        def committed(error: BaseException | None) -> None:
            if error is None:
                self._log_records.inc(len(answered))
            else:
                self.metrics.log_failures.labels(*self._labels).inc(len(answered))
            self.log_failed_at = None if error is None else time.monotonic()
            failure = None if error is None else StoreUnavailableError(
                f"the prediction log could not record this request ({error}), so the prediction is not "
                f"returned: nothing is answered unlogged. Check {self.log.where}"
            )
            # One wake-up of the event loop for the whole group, not one per request.
            loop.call_soon_threadsafe(_settle_logged, answered, failure)

        def taken() -> None:  # the answers are encoded while the log commits
            loop.call_soon_threadsafe(_settle_predicted, answered)

        self.log.submit(records, committed, taken=taken)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the client went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _settle_predicted(answered: Sequence[tuple[_Item, Prediction]]) -> None:
    for item, prediction in answered:
        _settle(item.predicted, prediction, None)


def _settle_logged(answered: Sequence[tuple[_Item, Prediction]], error: BaseException | None) -> None:
    for item, prediction in answered:
        if item.predicted.cancelled():  # the client went away before its answer was encoded
            continue
        _settle(item.predicted, prediction, None)  # when the log failed without taking them first
        _settle(item.logged, None, error)


def _to_list(raw: Any) -> Any:
    if hasattr(raw, "to_dict") and hasattr(raw, "columns"):
        return raw.to_dict(orient="list")
    if hasattr(raw, "tolist"):
        return raw.tolist()
    return raw


def _unbatched_inputs(data: Any, names: Sequence[str] | None) -> tuple[list[str], list[list[Any]]]:
    """A request's rows as the log records them: under the reference profile's feature names when a
    tensor has one column per feature (so the monitor finds them), else ``input-<i>``."""
    if hasattr(data, "columns") and hasattr(data, "to_numpy"):
        return [str(c) for c in data.columns], data.astype(object).where(data.notna(), None).values.tolist()
    array = np.asarray(data) if not isinstance(data, dict) else None
    if array is not None and array.ndim == 2:
        if names is not None and len(names) == array.shape[1]:
            return list(names), array.tolist()
        return [f"input-{i}" for i in range(array.shape[1])], array.tolist()
    return ["input"], [[_to_list(data)]]
