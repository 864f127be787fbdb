"""The inference server's HTTP application (Starlette): Open Inference Protocol V2, MLflow's
``/invocations``, Prometheus ``/metrics``, the prediction log, SHAP explanations of the served model
(``/v2/models/{name}/explain``, see :mod:`workbench.explain`) and the OpenAPI document.

Build it with :func:`create_app` and run it with :func:`workbench.serving.serve`. Every error a
request can cause is answered with a 4xx and a message naming the problem: V2 routes in the
protocol's ``{"error": ...}`` form, ``/invocations`` in MLflow's ``{"error_code", "message"}`` form.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import io
import json
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from workbench.config import Settings, get_settings
from workbench.errors import (
    ExplanationError,
    InvalidInputError,
    MissingDependencyError,
    NotFoundError,
    PayloadTooLargeError,
    SchemaError,
    UnsupportedMediaTypeError,
    WorkbenchError,
)
from workbench.serving import binary, codecs
from workbench.serving.batching import LOG_RETRY_SECONDS, Batcher, RequestInfo, _settle
from workbench.serving.guard import CrossSiteGuard, RequestLimits, add_guard, check_feedback_token, is_json, read_body
from workbench.serving.memory import RELEASE_AFTER_BYTES, release_memory
from workbench.serving.metrics import ServerMetrics
from workbench.predlog import LogWriter, open_log
from workbench.predlog.feedback import (
    ACCEPTED,
    FEEDBACK_STATUSES,
    MAX_FEEDBACK_BYTES,
    MAX_REQUEST_ID,
    FeedbackResult,
    parse_feedback,
)
from workbench.serving.model import Prediction, ServedModel

__all__ = ["ExplainerFactory", "RowExplainer", "ServerState", "create_app"]


class RowExplainer(Protocol):
    """What the explain route needs from an explainer (:class:`workbench.explain.Explainer` is one).

    ``explain`` returns a part that has ``to_dict()``, and whose class ``concat``s parts into one.
    The serving layer sits below :mod:`workbench.explain`, so the explainer is given to the server by
    whoever starts it (``workbench serve``) rather than imported here.
    """

    #: Rows explained per call: the route explains in chunks so predictions queue in between.
    chunk_rows: int

    def explain(self, rows: Any, *, target: Any = None) -> Any:
        """Contributions per row of ``rows`` (a DataFrame of the model's input columns)."""
        ...


#: Builds the explainer of the served model on the first explain request.
ExplainerFactory = Callable[[ServedModel], RowExplainer]

SERVER_NAME = "workbench"

#: The ``/invocations`` parameter that names the model's method to answer with (MLflow's name).
PREDICT_METHOD = "predict_method"


class _JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=_json_default,
                            option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def _json_default(value: Any) -> Any:
    """What orjson cannot write itself, written as MLflow's scoring server writes it."""
    if isinstance(value, (bytes, bytearray)):
        return base64.encodebytes(value).decode("ascii")
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "isoformat"):  # pandas Timestamps, dates and times
        return value.isoformat()
    raise TypeError(f"cannot write a {type(value).__name__} as JSON")


@dataclass
class ServerState:
    """Everything the routes share: the model, its batcher, the log, the metrics, the settings."""

    model: ServedModel
    batcher: Batcher
    log: LogWriter
    metrics: ServerMetrics
    settings: Settings
    #: What one request may hold, for this model (told to clients in its metadata).
    limits: RequestLimits
    #: Builds the explainer on the first explain request; ``None``: the route answers that it is off.
    explainer_factory: ExplainerFactory | None = None
    ready: bool = False


Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class _V2Request:
    """A checked V2 request body (what infer and explain both read)."""

    info: RequestInfo
    parameters: Mapping[str, Any]
    output_names: list[str]
    params: dict[str, Any] | None
    tensors: list[codecs.Tensor]


def _v2_error(exc: WorkbenchError) -> Response:
    return _JSON({"error": str(exc)}, status_code=exc.http_status)


#: MLflow's error code for each status it shares with the workbench (``databricks.ErrorCode``).
_MLFLOW_CODES = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "RESOURCE_DOES_NOT_EXIST",
                 413: "REQUEST_LIMIT_EXCEEDED", 429: "REQUEST_LIMIT_EXCEEDED", 500: "INTERNAL_ERROR",
                 503: "TEMPORARILY_UNAVAILABLE"}


def _mlflow_error(exc: WorkbenchError) -> Response:
    """An error body exactly as `mlflow models serve` writes it (``MlflowException.serialize_as_json``),
    written here so that an error does not import MLflow into a server that loaded its model without."""
    # MLflow answers input that breaks the signature with 400 INVALID_PARAMETER_VALUE.
    schema = exc.http_status == 422
    code = "INVALID_PARAMETER_VALUE" if schema else _MLFLOW_CODES.get(exc.http_status, "BAD_REQUEST")
    status = 400 if schema else exc.http_status
    # MLflow 3.17's classification of the two (a test compares these bodies with MLflow's own).
    error_class, sqlstate = ("SCHEMA_ENFORCEMENT_FAILED", "KAM01") if schema else ("INVALID_PARAMETER_VALUE", "KAM00")
    body = json.dumps({"error_code": code, "message": str(exc), "sqlstate": sqlstate, "error_class": error_class})
    return Response(body, status_code=status, media_type="application/json")


def _parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # MLflow's own scoring client (and Python's json module) write NaN and Infinity as bare
        # literals, which `mlflow models serve` accepts: so does this server, as missing values.
        if b"NaN" in body or b"Infinity" in body:
            try:
                return json.loads(body)
            except ValueError:
                pass
        raise InvalidInputError(f"the request body is not valid JSON: {exc}") from exc


class _Routes:
    """Route handlers bound to one :class:`ServerState`."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.model = state.model
        # Each request counts into these: looked up by their labels once, not per request.
        labels = (self.model.name, self.model.version or "")
        self._infer_success = state.metrics.infer_success.labels(*labels)
        self._infer_duration = state.metrics.infer_duration.labels(*labels)
        # Built on the first explain request (on the model's thread) by the server's explainer factory.
        self._explainer: RowExplainer | None = None

    # -- health and metadata --------------------------------------------------------------------

    async def live(self, request: Request) -> Response:
        return _JSON({"live": True})

    def _ready(self) -> bool:
        """Started, not stopping, and the log can take records (else every answer would be a 503)."""
        return self.state.ready and self.state.log.health().ok and not self._log_failing()

    def _log_failing(self) -> bool:
        """A commit of the log failed in the last :data:`LOG_RETRY_SECONDS` (a full disk)."""
        failed = self.state.batcher.log_failed_at
        return failed is not None and time.monotonic() - failed < LOG_RETRY_SECONDS

    async def ready(self, request: Request) -> Response:
        health = self.state.log.health()
        failing = self._log_failing()
        ready = self.state.ready and health.ok and not failing
        body: dict[str, Any] = {"ready": ready, "log": health.to_json()}
        if not ready:
            body["reason"] = (health.detail if not health.ok else
                              f"the prediction log cannot be written (a commit failed in the last "
                              f"{LOG_RETRY_SECONDS:.0f} s): check free space and permissions of {self.state.log.where}"
                              if failing else "the server is starting or stopping")
        return _JSON(body, status_code=200 if ready else 503)

    async def server_metadata(self, request: Request) -> Response:
        from importlib.metadata import PackageNotFoundError, version

        try:
            server_version = version("workbench")
        except PackageNotFoundError:
            server_version = "unknown"
        return _JSON({"name": SERVER_NAME, "version": server_version,
                      "extensions": ["model_repository_readonly", "binary_tensor_data", "workbench_prediction_log", "explain",
                                     "feedback"]})

    def _check_model(self, request: Request) -> None:
        name = request.path_params["model_name"]
        version = request.path_params.get("model_version")
        if name != self.model.name:
            raise NotFoundError(f"model {name!r} is not served here; this server serves {self.model.name!r}")
        if version is not None and self.model.version is not None and version != self.model.version:
            raise NotFoundError(
                f"model {name!r} version {version!r} is not served here; this server serves version "
                f"{self.model.version!r}"
            )

    async def model_metadata(self, request: Request) -> Response:
        try:
            self._check_model(request)
        except WorkbenchError as exc:
            return _v2_error(exc)
        return _JSON(self.model.metadata())

    async def model_ready(self, request: Request) -> Response:
        try:
            self._check_model(request)
        except WorkbenchError as exc:
            return _v2_error(exc)
        ready = self._ready()
        return _JSON({"name": self.model.name, "ready": ready}, status_code=200 if ready else 503)

    # -- inference ------------------------------------------------------------------------------

    def _observe(self, info: RequestInfo, status: int) -> None:
        if status < 400:
            self._infer_success.inc()
            self._infer_duration.observe(time.perf_counter() - info.started)
        else:
            self.state.metrics.infer_failure.labels(self.model.name, self.model.version or "", str(status)).inc()

    async def infer(self, request: Request) -> Response:
        info = RequestInfo(protocol="v2")
        try:
            info = _with_client_id(info, request.headers.get("x-request-id"))  # the body's id wins
            self._check_model(request)
            body = await self._v2_body(request)
            response = await self._infer_v2(body, info)
        except WorkbenchError as exc:
            self._observe(info, exc.http_status)
            return _v2_error(exc)
        self._observe(info, 200)
        return _released(request, response)

    async def _v2_body(self, request: Request) -> Any:
        """A V2 request body: JSON, or JSON followed by binary tensors (the binary tensor data
        extension, :mod:`workbench.serving.binary`), whose inputs then hold numpy arrays."""
        header_length = request.headers.get(binary.HEADER_LENGTH)
        if header_length is None:
            return _parse_json(await read_body(request, self.state.settings.max_body_bytes))
        # Only a client that is not a browser can send it: the header makes a page's request preflighted.
        content_type = request.headers.get("content-type", "")
        mime = content_type.split(";")[0].strip().lower()
        if mime and mime != "application/octet-stream" and not is_json(mime):
            raise UnsupportedMediaTypeError(
                f"content type {content_type!r} is not supported for binary tensors: send "
                "application/octet-stream (or none) with Inference-Header-Content-Length")
        raw = await read_body(request, self.state.settings.max_body_bytes, json_only=False)
        json_part, tensors = binary.split_request(raw, header_length)
        body = _parse_json(json_part)
        if isinstance(body, Mapping) and isinstance(body.get("inputs"), list):
            self._check_rows(max((_tensor_rows(t) for t in body["inputs"]), default=0))
            body = {**body, "inputs": binary.attach_binary_inputs(body["inputs"], tensors)}
        elif len(tensors):
            raise InvalidInputError("binary data was sent, but the JSON part has no 'inputs' list to say whose")
        return body

    async def _infer_v2(self, body: Any, info: RequestInfo) -> Response:
        request = self._read_v2(body, info)
        info, output_names, params, tensors = request.info, request.output_names, request.params, request.tensors

        def respond(outputs: list[dict[str, Any]]) -> Response:
            answer: dict[str, Any] = {
                "model_name": self.model.name,
                "model_version": self.model.version,
                "id": info.request_id,
                "parameters": {},
                "outputs": outputs,
            }
            headers = {"x-request-id": info.request_id}
            packed = binary.encode_response(answer, *binary.binary_outputs(body))
            if packed is not None:
                content, header_length = packed
                headers[binary.HEADER_LENGTH] = str(header_length)
                return Response(content, media_type="application/octet-stream", headers=headers)
            return _JSON(answer, headers=headers)

        if self.model.batchable:
            batch = self.model.batch_from_tensors(tensors)
            return await self.state.batcher.infer(
                batch, info, lambda p: respond([codecs.encode_tensor(n, v) for n, v in p.outputs.items()]),
                output_names, params)
        else:
            data: Any
            if len(tensors) == 1:
                data = tensors[0].data
            else:
                data = {t.name: t.data for t in tensors}
            raw = await self.state.batcher.run_unbatched(data, info, params)
            outputs = [codecs.encode_tensor(n, v) for n, v in _unbatched_outputs(raw).items()]
            if output_names:
                unknown = [n for n in output_names if n not in {o["name"] for o in outputs}]
                if unknown:
                    raise InvalidInputError(f"unknown output(s) {unknown}")
                outputs = [o for o in outputs if o["name"] in output_names]
            return respond(outputs)

    def _read_v2(self, body: Any, info: RequestInfo) -> _V2Request:
        """Check and decode a V2 request body; infer and explain answer bad bodies alike."""
        if not isinstance(body, Mapping):
            raise InvalidInputError("an inference request is a JSON object with an 'inputs' list")
        raw_inputs = body.get("inputs")
        if not isinstance(raw_inputs, list) or not raw_inputs:
            raise InvalidInputError("the request needs a non-empty 'inputs' list of tensors")
        request_id = body.get("id")
        if request_id is not None and not isinstance(request_id, str):
            raise InvalidInputError("'id' must be a string")
        if request_id:
            info = RequestInfo(protocol=info.protocol, request_id=request_id, started=info.started)
        parameters = body.get("parameters") or {}
        if not isinstance(parameters, Mapping):
            raise InvalidInputError("'parameters' must be an object")
        requested = body.get("outputs")
        requested = [] if requested is None else requested
        if not isinstance(requested, list) or not all(
            isinstance(o, Mapping) and isinstance(o.get("name"), str) for o in requested
        ):
            raise InvalidInputError("'outputs' must be a list of objects with a 'name'")
        output_names = [o["name"] for o in requested]
        params = self._model_params(parameters)
        # Rows are counted before decoding: decoding is where a large request costs memory.
        self._check_rows(max((_tensor_rows(t) for t in raw_inputs), default=0))
        tensors = [codecs.decode_tensor(t) for t in raw_inputs]
        return _V2Request(info, parameters, output_names, params, tensors)

    def _check_rows(self, rows: int) -> None:
        """Refuse (413) a request with more rows than the server takes for this model."""
        limits = self.state.limits
        if rows > limits.max_rows:
            raise PayloadTooLargeError(
                f"the request has {rows} rows, more than the server's limit of {limits.max_rows} rows per "
                f"request for this model ({limits.explain()}): send fewer rows per request "
                "(Deployment.predict splits a large frame itself)"
            )

    def _model_params(self, parameters: Mapping[str, Any]) -> dict[str, Any] | None:
        """Request parameters the model declares in its signature; protocol hints are dropped."""
        known = self.model.param_names
        if not known:
            return None
        chosen = {k: v for k, v in parameters.items() if k in known}
        return chosen or None

    # -- explanations (workbench.explain) -------------------------------------------------------

    async def explain(self, request: Request) -> Response:
        """SHAP contributions per row for a V2 inference payload, from the model being served."""
        try:
            self._check_model(request)
            v2 = self._read_v2(await self._v2_body(request), RequestInfo(protocol="v2-explain"))
            if not self.model.batchable:
                raise ExplanationError(
                    "this model takes tensors or has no column signature, and explanations need named "
                    "input columns: log it with a column-based signature (workbench.log_model does)"
                )
            frame = self.model.frame([self.model.batch_from_tensors(v2.tensors)])
            for name in v2.output_names:
                if name not in self.model.output_names:
                    raise InvalidInputError(f"unknown output {name!r}; this model offers {self.model.output_names}")
            target = v2.parameters.get("target")
            # On the model's one worker thread, so never alongside a prediction; in chunks, so
            # predictions that queue meanwhile go in between.
            loop, executor = asyncio.get_running_loop(), self.state.batcher.executor
            try:
                explainer = await loop.run_in_executor(executor, self._fitted_explainer)
            except MissingDependencyError as exc:
                raise MissingDependencyError(
                    "explanations", "shap",
                    hint="model images explain only when packaged with `workbench package --explain`",
                ) from exc
            step = explainer.chunk_rows
            parts = [
                await loop.run_in_executor(executor, functools.partial(explainer.explain, frame.iloc[i:i + step],
                                                                       target=target))
                for i in range(0, len(frame), step)
            ]
        except WorkbenchError as exc:
            return _v2_error(exc)
        response = {"model_name": self.model.name, "model_version": self.model.version,
                    "id": v2.info.request_id, **type(parts[0]).concat(parts).to_dict()}
        return _JSON(response, headers={"x-request-id": v2.info.request_id})

    def _fitted_explainer(self) -> RowExplainer:
        if self._explainer is None:  # built lazily: shap is imported only when explanations are asked for
            factory = self.state.explainer_factory
            if factory is None:
                raise ExplanationError("this server was started without explanations: serve the model with "
                                       "`workbench serve`, which explains with workbench.explain")
            self._explainer = factory(self.model)
        return self._explainer

    async def invocations(self, request: Request) -> Response:
        info = RequestInfo(protocol="invocations")
        try:
            info = _with_client_id(info, request.headers.get("x-request-id"))
            content_type = request.headers.get("content-type", "")
            mime = content_type.split(";")[0].strip().lower()
            if mime not in ("application/json", "text/csv"):
                raise UnsupportedMediaTypeError(
                    f"content type {content_type or '(none)'!r} is not supported: send application/json "
                    "(dataframe_split, dataframe_records, instances or inputs) or text/csv"
                )
            body = await read_body(request, self.state.settings.max_body_bytes, json_only=False)
            response = await self._invocations(body, mime, info)
        except WorkbenchError as exc:
            self._observe(info, exc.http_status)
            return _mlflow_error(exc)
        self._observe(info, 200)
        return _released(request, response)

    async def _invocations(self, body: bytes, mime: str, info: RequestInfo) -> Response:
        params = None
        if mime == "text/csv":
            # A CSV has a header line and at most one line per row: bound it before pandas reads it.
            self._check_rows(max(body.count(b"\n") - 1, 0))
            columns = _csv_columns(body)
            payload: dict[str, Any] = {}
        else:
            payload = _parse_json(body)
            if not isinstance(payload, dict):
                raise InvalidInputError(
                    "the JSON body must be an object with one of the keys dataframe_split, "
                    "dataframe_records, instances or inputs"
                )
            raw_params = payload.get("params")
            if raw_params is not None and not isinstance(raw_params, Mapping):
                raise InvalidInputError("'params' must be an object")
            method = (raw_params or {}).get(PREDICT_METHOD, "predict")
            if method != "predict":
                return await self._invocations_method(payload, method, info)
            params = self._model_params(raw_params or {})
            self._check_rows(_payload_rows(payload))
            columns = None
        if self.model.batchable:
            if columns is None:
                columns = _json_columns(payload)
            batch = self.model.to_batch(columns)
            return await self.state.batcher.infer(batch, info, lambda p: _invocations_answer(p.raw, info), (), params)
        data = _mlflow_parse(payload, self.model.input_schema) if columns is None else _frame(columns)
        return _invocations_answer(await self.state.batcher.run_unbatched(data, info, params), info)

    async def _invocations_method(self, payload: Mapping[str, Any], method: Any, info: RequestInfo) -> Response:
        """``params: {"predict_method": "predict_proba"}``: the answer of another method of the
        model (see :attr:`ServedModel.output_names`), as MLflow answers a model logged with that
        ``pyfunc_predict_fn``: ``predictions`` with one entry (a list, for two dimensions) per row."""
        offered = self.model.output_names
        if not isinstance(method, str) or method not in offered or not self.model.batchable:
            raise InvalidInputError(
                f"predict_method {method!r} is not offered by this model: it offers {offered}"
                + ("" if self.model.batchable else " (a model without a column signature answers predict only)"))
        self._check_rows(_payload_rows(payload))
        batch = self.model.to_batch(_json_columns(payload))
        params = self._model_params({k: v for k, v in (payload.get("params") or {}).items() if k != PREDICT_METHOD})

        def respond(prediction: Prediction) -> Response:
            values = prediction.outputs[method]
            answer = np.ascontiguousarray(values) if values.dtype.kind in "biuf" else values.tolist()
            return _JSON({"predictions": answer}, headers={"x-request-id": info.request_id})

        return await self.state.batcher.infer(batch, info, respond, (method,), params)

    # -- feedback -------------------------------------------------------------------------------

    async def feedback(self, request: Request) -> Response:
        """Ground truth and rewards for answered rows (see :mod:`workbench.predlog.feedback`)."""
        try:
            self._check_model(request)
            check_feedback_token(request.headers.get("authorization"), self.state.settings.feedback_token,
                                 required=True)
            limit = min(self.state.settings.max_body_bytes, MAX_FEEDBACK_BYTES)
            items = parse_feedback(_parse_json(await read_body(
                request, limit, advice="for feedback: send the items in several requests")))
            loop = asyncio.get_running_loop()
            committed: asyncio.Future[list[FeedbackResult]] = loop.create_future()

            def done(results: list[FeedbackResult], error: BaseException | None) -> None:
                loop.call_soon_threadsafe(_settle, committed, results, error)

            self.state.log.submit_feedback(items, done, model_version=self.model.version)
            results = await committed
        except WorkbenchError as exc:
            return _v2_error(exc)
        counts = {status: sum(r.status == status for r in results) for status in FEEDBACK_STATUSES}
        status = 200
        if not any(r.status in ACCEPTED for r in results):
            status = 404 if counts["unknown"] else 422
        return _JSON({"results": [r.to_json() for r in results], **counts}, status_code=status)

    async def feedback_page(self, request: Request) -> Response:
        try:
            since = _int_param(request, "since", 0, minimum=0, maximum=2**63 - 1)
            limit = _int_param(request, "limit", 10_000, minimum=1, maximum=10_000)
            page = self.state.log.read_feedback(since=since, limit=limit)
        except WorkbenchError as exc:
            return _v2_error(exc)
        return _JSON({**page.to_json(), "replica": self.state.log.replica})

    # -- operations -----------------------------------------------------------------------------

    async def metrics(self, request: Request) -> Response:
        return Response(self.state.metrics.render(), media_type="text/plain; version=0.0.4")

    async def predictions(self, request: Request) -> Response:
        try:
            since = _int_param(request, "since", 0, minimum=0, maximum=2**63 - 1)
            limit = _int_param(request, "limit", 1000, minimum=1, maximum=10_000)
            budget = self.state.settings.log_page_bytes
            max_bytes = _int_param(request, "max_bytes", budget, minimum=1, maximum=budget)
            page = self.state.log.read(since=since, limit=limit, max_bytes=max_bytes)
        except WorkbenchError as exc:
            return _v2_error(exc)
        body = page.to_json()
        body["replica"] = self.state.log.replica
        return _JSON(body)

    async def openapi(self, request: Request) -> Response:
        from workbench.serving.openapi import openapi_document

        return _JSON(openapi_document(self.model, max_page_bytes=self.state.settings.log_page_bytes))

    async def ping(self, request: Request) -> Response:
        return Response("\n", media_type="application/json", status_code=200 if self._ready() else 503)


def _invocations_answer(raw: Any, info: RequestInfo) -> Response:
    """The MLflow protocol's answer: ``predictions``, as MLflow's scoring server writes them."""
    if isinstance(raw, np.ndarray):
        return _JSON({"predictions": raw if raw.dtype.kind in "biuf" else raw.tolist()},
                     headers={"x-request-id": info.request_id})
    from mlflow.pyfunc.scoring_server import predictions_to_json

    out = io.StringIO()
    predictions_to_json(raw, out)
    return Response(out.getvalue(), media_type="application/json", headers={"x-request-id": info.request_id})


def _released(request: Request, response: Response) -> Response:
    """``response``, followed (once sent) by giving memory back when the request was large."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) >= RELEASE_AFTER_BYTES:
        response.background = BackgroundTask(release_memory)
    return response


def _with_client_id(info: RequestInfo, given: str | None) -> RequestInfo:
    """``info`` with the request id the client chose (``x-request-id``), when it sent one: feedback
    then refers to the answer by the client's own key."""
    if given is None:
        return info
    if not given or len(given) > MAX_REQUEST_ID or not given.isprintable() or not given.isascii():
        raise InvalidInputError(f"x-request-id must be 1 to {MAX_REQUEST_ID} printable ASCII characters")
    return RequestInfo(protocol=info.protocol, request_id=given, started=info.started)


def _int_param(request: Request, name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise InvalidInputError(f"{name} must be a whole number, got {raw!r}") from exc
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise InvalidInputError(f"{name} must be {bound}, got {value}")
    return value




def _tensor_rows(raw: Any) -> int:
    """The rows of a raw V2 tensor (its first dimension), 0 when its shape is not readable yet."""
    shape = raw.get("shape") if isinstance(raw, Mapping) else None
    if isinstance(shape, list) and shape and isinstance(shape[0], int):
        return shape[0]
    return 0


def _payload_rows(payload: Mapping[str, Any]) -> int:
    """The rows of an MLflow scoring payload, counted without converting it."""
    rows = 0
    for key in ("dataframe_split", "dataframe_records", "instances", "inputs"):
        value = payload.get(key)
        if key == "dataframe_split" and isinstance(value, Mapping):
            value = value.get("data")
        if isinstance(value, list):
            rows = max(rows, len(value))
        elif isinstance(value, Mapping):  # one list per column
            rows = max([rows, *(len(v) for v in value.values() if isinstance(v, list))])
    return rows


def _json_columns(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The column-oriented view of any of MLflow's JSON input formats."""
    keys = [k for k in ("dataframe_split", "dataframe_records", "instances", "inputs") if k in payload]
    if len(keys) != 1:
        raise InvalidInputError(
            "the JSON body needs exactly one of the keys dataframe_split, dataframe_records, instances "
            f"or inputs; got {sorted(payload) or 'none'}"
        )
    key = keys[0]
    value = payload[key]
    if key == "dataframe_split":
        names, rows = codecs.columns_from_split(value, key)
        return codecs.rows_to_columns(names, rows)
    if key == "dataframe_records":
        return codecs.columns_from_records(value, key)
    # instances / inputs: records, or one list per column
    if isinstance(value, Mapping):
        if not all(isinstance(v, list) for v in value.values()):
            raise InvalidInputError(f"{key} as an object must map each column to a list of values")
        return dict(value)
    if isinstance(value, list) and all(isinstance(v, Mapping) for v in value):
        return codecs.columns_from_records(value, key)
    raise SchemaError(
        f"{key} must be a list of records or an object of columns for this model, whose inputs are named "
        "columns; use dataframe_split for rows of values"
    )


def _csv_columns(body: bytes) -> dict[str, Any]:
    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(body))
    except Exception as exc:
        raise InvalidInputError(f"the body is not a readable CSV table with a header row: {exc}") from exc
    return {str(c): frame[c].to_numpy() for c in frame.columns}


def _frame(columns: Mapping[str, Any]) -> Any:
    import pandas as pd

    return pd.DataFrame(dict(columns))


def _mlflow_parse(payload: Mapping[str, Any], schema: Any) -> Any:
    """MLflow's own parsing, for models without a column signature (tensors, or none at all)."""
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc.scoring_server import infer_and_parse_data

    data = {k: v for k, v in payload.items() if k != "params"}
    try:
        return infer_and_parse_data(data, schema)
    except MlflowException as exc:
        raise InvalidInputError(exc.message) from exc
    except Exception as exc:
        raise InvalidInputError(f"cannot read the input: {exc}") from exc


def _unbatched_outputs(raw: Any) -> dict[str, np.ndarray]:
    import pandas as pd

    if isinstance(raw, pd.DataFrame):
        return {str(c): raw[c].to_numpy() for c in raw.columns}
    if isinstance(raw, dict):
        return {str(k): np.asarray(v) for k, v in raw.items()}
    if isinstance(raw, pd.Series):
        return {str(raw.name or "predict"): raw.to_numpy()}
    return {"predict": np.asarray(raw)}


def create_app(model: ServedModel, *, log_dir: str | Path, settings: Settings | None = None,
               replica: str | None = None, explainer: ExplainerFactory | None = None,
               deployment: str | None = None) -> Starlette:
    """The server application for one loaded model, logging predictions into ``log_dir`` (or, with
    ``settings.log_url``, into that PostgreSQL store under ``deployment``, default the model's name,
    spooling to ``log_dir`` while it is away); ``explainer`` builds the explain route's explainer
    (without one, the route says it is off)."""
    settings = settings or get_settings()
    metrics = ServerMetrics.create()
    log = open_log(log_dir, url=settings.log_url, deployment=deployment or model.name,
                   replica=replica or f"{socket.gethostname()}-{os.getpid()}")
    batcher = Batcher(model, log, metrics, max_batch_size=settings.max_batch_size,
                      max_wait_ms=settings.max_batch_wait_ms)
    limits = RequestLimits.for_model(settings.max_body_bytes, settings.max_rows_per_request, model.width)
    model.limits = limits.to_json()
    state = ServerState(model, batcher, log, metrics, settings, limits, explainer)
    routes = _Routes(state)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        batcher.start()
        state.ready = True
        try:
            yield
        finally:
            state.ready = False
            await batcher.stop()  # in-flight requests finish first: uvicorn waits for them
            log.close()
            print(f"workbench: stopped cleanly, prediction log flushed to {log.where}", file=sys.stderr, flush=True)

    model_path = "/v2/models/{model_name}"
    versioned = "/v2/models/{model_name}/versions/{model_version}"
    app = _ServerApp(
        routes,
        CrossSiteGuard(None, allowed_origins=settings.allowed_origins, allows_host=settings.allows_host),
        routes=[
            Route("/v2/health/live", routes.live),
            Route("/v2/health/ready", routes.ready),
            Route("/v2", routes.server_metadata),
            Route(model_path, routes.model_metadata),
            Route(versioned, routes.model_metadata),
            Route(f"{model_path}/ready", routes.model_ready),
            Route(f"{versioned}/ready", routes.model_ready),
            Route(f"{model_path}/infer", routes.infer, methods=["POST"]),
            Route(f"{versioned}/infer", routes.infer, methods=["POST"]),
            Route(f"{model_path}/explain", routes.explain, methods=["POST"]),
            Route(f"{versioned}/explain", routes.explain, methods=["POST"]),
            Route(f"{model_path}/feedback", routes.feedback, methods=["POST"]),
            Route(f"{versioned}/feedback", routes.feedback, methods=["POST"]),
            Route("/invocations", routes.invocations, methods=["POST"]),
            Route("/ping", routes.ping),
            Route("/health", routes.ping),
            Route("/metrics", routes.metrics),
            Route("/workbench/predictions", routes.predictions),
            Route("/workbench/feedback", routes.feedback_page),
            Route("/openapi.json", routes.openapi),
        ],
        lifespan=lifespan,
        exception_handlers={404: _not_found, 405: _method_not_allowed, Exception: _internal_error},
    )
    app.state.workbench = state
    add_guard(app, settings.allowed_origins, allows_host=settings.allows_host)  # before any route: a refused request is never read
    app.add_middleware(_RequestMetrics, metrics=metrics)
    return app


class _ServerApp(Starlette):
    """The server's Starlette application, with the two inference routes (``POST /invocations``
    and ``POST /v2/models/{name}[/versions/{v}]/infer``) dispatched before Starlette's middleware
    and router: per request those cost more than the rest of the route (profile in
    ``benchmarks/README.md``). The short way keeps what the long way does for these routes: the
    Host and cross-site checks of :class:`~workbench.serving.guard.CrossSiteGuard` (a request the
    guard refuses, or one with an ``Origin`` header, which may need CORS answers, takes the long
    way), the body limits (the handlers read the body as always), the route's request metrics and
    the 500 answer to a bug. Everything else takes the long way."""

    def __init__(self, handlers: _Routes, guard: CrossSiteGuard, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._handlers = handlers
        self._guard = guard
        self._metrics = handlers.state.metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            hot = _hot_route(scope["path"])
            if hot is not None and self._guard.refusal(scope) is None and not _has_origin(scope):
                await self._hot(scope, receive, send, *hot)
                return
        await super().__call__(scope, receive, send)

    async def _hot(self, scope: Any, receive: Any, send: Any, template: str, params: dict[str, str]) -> None:
        started = time.perf_counter()
        scope["app"] = self
        scope["path_params"] = params
        request = Request(scope, receive)
        status = 500
        try:
            handler = self._handlers.invocations if template == "/invocations" else self._handlers.infer
            try:
                response = await handler(request)
            except Exception as exc:
                await _send_response(send, await _internal_error(request, exc))
                raise
            status = response.status_code
            await _send_response(send, response)
        finally:
            self._metrics.observe_request("POST", template, status, time.perf_counter() - started)


_V2_PREFIX = "/v2/models/"
_V2_INFER = "/infer"


def _hot_route(path: str) -> tuple[str, dict[str, str]] | None:
    """The template and path parameters of an inference route, or ``None`` for any other path
    (names match as Starlette's ``{param}`` does: one path segment, not empty)."""
    if path == "/invocations":
        return "/invocations", {}
    if not (path.startswith(_V2_PREFIX) and path.endswith(_V2_INFER)):
        return None
    parts = path[len(_V2_PREFIX):-len(_V2_INFER)].split("/")
    if len(parts) == 1 and parts[0]:
        return "/v2/models/{model_name}/infer", {"model_name": parts[0]}
    if len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2]:
        return ("/v2/models/{model_name}/versions/{model_version}/infer",
                {"model_name": parts[0], "model_version": parts[2]})
    return None


def _has_origin(scope: Any) -> bool:
    return any(key == b"origin" for key, _ in scope["headers"])


async def _send_response(send: Any, response: Response) -> None:
    """Send a complete (not streamed) response, then run its background task (what
    ``Response.__call__`` does for HTTP)."""
    await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
    if response.background is not None:
        await response.background()


async def _not_found(request: Request, exc: Exception) -> Response:
    return _JSON({"error": f"no route {request.url.path!r}: see /openapi.json for the routes"}, status_code=404)


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    headers = dict(getattr(exc, "headers", None) or {})  # Starlette's: {"Allow": "POST"}
    allowed = headers.get("Allow", "")
    return _JSON({"error": f"{request.method} is not allowed on {request.url.path}; use {allowed or 'another method'}"},
                 status_code=405, headers=headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    # Reached only by a bug: the request is refused, the server keeps serving.
    return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)


class _RequestMetrics:
    """Counts and times every HTTP request by route template (not raw path: bounded label values)."""

    def __init__(self, app: Any, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe_request(scope.get("method", ""), path, status[0], time.perf_counter() - started)
