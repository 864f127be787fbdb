"""The OpenAPI 3 document of the inference server (served at ``/openapi.json``).

Request bodies are described precisely enough for a property-based tester (schemathesis) to generate
valid and invalid requests for every route; the served model's input names and datatypes are filled
into the examples. Only the content types the server reads are listed (JSON; CSV for
``/invocations``), with every status a route answers: 403 for a request a page on another origin
sent, 413 over the byte or row limit, 415 for another content type (see
:mod:`workbench.serving.guard`).
"""

from __future__ import annotations

from typing import Any

from workbench.predlog.feedback import FEEDBACK_STATUSES
from workbench.serving.codecs import V2_DATATYPES
from workbench.serving.model import ServedModel

__all__ = ["openapi_document"]

_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_MLFLOW_ERROR = {
    "type": "object",
    "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}},
    "required": ["error_code", "message"],
}
_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string", "enum": list(V2_DATATYPES)},
        "parameters": {"type": "object"},
        "data": {"type": "array"},
    },
}
_INFER_REQUEST = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {"type": "array", "items": {"$ref": "#/components/schemas/RequestInput"}},
        "outputs": {
            "type": "array",
            "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"},
                                                                             "parameters": {"type": "object"}}},
        },
    },
}
_INFER_RESPONSE = {
    "type": "object",
    "required": ["model_name", "outputs"],
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": ["string", "null"]},
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "outputs": {"type": "array", "items": {"$ref": "#/components/schemas/ResponseOutput"}},
    },
}
_EXPLAIN_RESPONSE = {
    "type": "object",
    "required": ["model_name", "method", "output", "features", "rows"],
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": ["string", "null"]},
        "id": {"type": "string"},
        "method": {"type": "string", "enum": ["tree", "permutation", "kernel"]},
        "output": {"type": "string"},
        "model_uri": {"type": ["string", "null"]},
        "features": {"type": "array", "items": {"type": "string"}},
        "additivity_error": {"type": ["number", "null"]},
        "additivity_tolerance": {"type": "number"},
        "rows": {"type": "array", "items": {
            "type": "object",
            "required": ["prediction", "base_value", "contributions"],
            "properties": {
                "target": {},
                "prediction": {"type": ["number", "null"]},
                "base_value": {"type": ["number", "null"]},
                "contributions": {"type": "object", "additionalProperties": {"type": ["number", "null"]}},
                "values": {"type": "object"},
            },
        }},
    },
}
_INVOCATIONS = {
    "type": "object",
    "description": "Exactly one of dataframe_split, dataframe_records, instances, inputs; optional params.",
    "properties": {
        "dataframe_split": {
            "type": "object",
            "properties": {"columns": {"type": "array", "items": {"type": "string"}},
                           "data": {"type": "array", "items": {"type": "array"}}},
        },
        "dataframe_records": {"type": "array", "items": {"type": "object"}},
        "instances": {},
        "inputs": {},
        "params": {"type": "object"},
    },
}


_FEEDBACK_ITEM = {
    "type": "object",
    "required": ["request_id"],
    "additionalProperties": False,
    "properties": {
        "request_id": {"type": "string", "minLength": 1, "maxLength": 256,
                       "description": "the id the answer carried (its id / x-request-id)"},
        "row": {"type": "integer", "minimum": 0, "default": 0, "description": "the row's position in its request"},
        "truth": {"description": "the true value of the row"},
        "reward": {"type": "number", "description": "a reward for the answer (bandit routing learns from it)"},
    },
}

_FEEDBACK_RESPONSE = {
    "type": "object",
    "required": ["results"],
    "properties": {
        "results": {"type": "array", "items": {"type": "object", "required": ["request_id", "row", "status"],
                                               "properties": {
            "request_id": {"type": "string"}, "row": {"type": "integer"},
            "status": {"type": "string", "enum": list(FEEDBACK_STATUSES)},
            "model_version": {"type": "string", "nullable": True}, "delay_s": {"type": "number", "nullable": True},
            "message": {"type": "string"}}}},
        **{k: {"type": "integer"} for k in FEEDBACK_STATUSES},
    },
}


def _json(schema: Any) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _responses(ok: Any, *errors: int, error_schema: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"200": {"description": "OK", "content": _json(ok)}}
    for code in errors:
        out[str(code)] = {"description": "Error", "content": _json(error_schema or {"$ref": "#/components/schemas/Error"})}
    return out


def openapi_document(model: ServedModel, *, max_page_bytes: int = 8 * 1024 * 1024) -> dict[str, Any]:
    """The OpenAPI document for a server of ``model`` (``max_page_bytes``: its log page limit)."""
    model_params = [{"name": "model_name", "in": "path", "required": True, "schema": {"type": "string"},
                     "example": model.name}]
    version_params = [*model_params, {"name": "model_version", "in": "path", "required": True,
                                      "schema": {"type": "string"}, "example": model.version or "1"}]
    example_inputs = [
        {"name": c.name, "shape": [1], "datatype": c.v2_datatype,
         "data": [0.0 if c.v2_datatype.startswith("FP") else 0 if c.v2_datatype.startswith("INT") else
                  False if c.v2_datatype == "BOOL" else "a"]}
        for c in model.columns or ()
    ]
    infer_body = {"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/InferenceRequest"},
        **({"example": {"inputs": example_inputs}} if example_inputs else {}),
    }}}

    def infer_op(params: list[dict[str, Any]]) -> dict[str, Any]:
        return {"post": {
            "summary": "Predict (Open Inference Protocol V2)",
            "operationId": "infer" + ("_version" if len(params) > 1 else ""),
            "parameters": params,
            "requestBody": infer_body,
            "responses": _responses({"$ref": "#/components/schemas/InferenceResponse"},
                                    400, 403, 404, 413, 415, 422, 503),
        }}

    def explain_op(params: list[dict[str, Any]]) -> dict[str, Any]:
        return {"post": {
            "summary": "SHAP contributions per row, from the served model (same payload as infer; "
                       "parameters.target names the class to explain)",
            "operationId": "explain" + ("_version" if len(params) > 1 else ""),
            "parameters": params,
            "requestBody": infer_body,
            "responses": _responses({"$ref": "#/components/schemas/ExplanationResponse"},
                                    400, 403, 404, 413, 415, 422, 501, 503),
        }}

    def feedback_op(params: list[dict[str, Any]]) -> dict[str, Any]:
        either = {"oneOf": [{"$ref": "#/components/schemas/FeedbackResponse"}, {"$ref": "#/components/schemas/Error"}]}
        return {"post": {
            "summary": "Ground truth and/or a reward for answered rows: one item or a list (404: every "
                       "request id unknown here; 422: every row out of range)",
            "operationId": "feedback" + ("_version" if len(params) > 1 else ""),
            "parameters": params,
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "oneOf": [{"$ref": "#/components/schemas/FeedbackItem"},
                          {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/FeedbackItem"}}]}}}},
            "responses": {**_responses({"$ref": "#/components/schemas/FeedbackResponse"}, 400, 403, 413, 415, 503),
                          "404": {"description": "Unknown", "content": _json(either)},
                          "422": {"description": "Out of range", "content": _json(either)}},
        }}

    def get_op(op_id: str, summary: str, ok: Any, params: list[dict[str, Any]] | None = None,
               errors: tuple[int, ...] = ()) -> dict[str, Any]:
        op: dict[str, Any] = {"summary": summary, "operationId": op_id, "responses": _responses(ok, *errors)}
        if params:
            op["parameters"] = params
        return {"get": op}

    # The log's pages (predictions, feedback): a cursor in, records and the next cursor out.
    cursor_params = [
        {"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000}},
    ]
    page_responses = _responses({"type": "object", "required": ["records", "next_since", "more"],
                                 "properties": {"records": {"type": "array", "items": {"type": "object"}},
                                                "next_since": {"type": "integer"}, "more": {"type": "boolean"},
                                                "replica": {"type": "string"}}}, 400, 403, 404)
    metadata = {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string"}, "versions": {"type": "array"}, "platform": {"type": "string"},
        "inputs": {"type": "array"}, "outputs": {"type": "array"}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": f"Workbench inference server: {model.name}", "version": model.version or "0"},
        "paths": {
            "/v2/health/live": get_op("live", "Liveness", {"type": "object"}),
            "/v2/health/ready": get_op("ready", "Readiness", {"type": "object"}, errors=(503,)),
            "/v2": get_op("server_metadata", "Server metadata", {"type": "object"}),
            "/v2/models/{model_name}": get_op("model_metadata", "Model metadata", metadata, model_params, (404,)),
            "/v2/models/{model_name}/versions/{model_version}": get_op(
                "model_version_metadata", "Model version metadata", metadata, version_params, (404,)),
            "/v2/models/{model_name}/ready": get_op("model_ready", "Model readiness", {"type": "object"},
                                                    model_params, (404, 503)),
            "/v2/models/{model_name}/versions/{model_version}/ready": get_op(
                "model_version_ready", "Model version readiness", {"type": "object"}, version_params, (404, 503)),
            "/v2/models/{model_name}/infer": infer_op(model_params),
            "/v2/models/{model_name}/versions/{model_version}/infer": infer_op(version_params),
            "/v2/models/{model_name}/explain": explain_op(model_params),
            "/v2/models/{model_name}/versions/{model_version}/explain": explain_op(version_params),
            "/v2/models/{model_name}/feedback": feedback_op(model_params),
            "/v2/models/{model_name}/versions/{model_version}/feedback": feedback_op(version_params),
            "/invocations": {"post": {
                "summary": "Predict (MLflow scoring protocol)",
                "operationId": "invocations",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Invocations"}},
                    "text/csv": {"schema": {"type": "string"}},
                }},
                "responses": {
                    **_responses({"type": "object", "properties": {"predictions": {}}},
                                 400, 413, 415, 422, 503, error_schema={"$ref": "#/components/schemas/MlflowError"}),
                    # refused before the route runs, in the server's own error form
                    "403": {"description": "Error", "content": _json({"$ref": "#/components/schemas/Error"})},
                },
            }},
            "/metrics": {"get": {"summary": "Prometheus metrics", "operationId": "metrics",
                                 "responses": {"200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/workbench/predictions": {"get": {
                "summary": "Prediction log records after a cursor",
                "operationId": "predictions",
                "parameters": [
                    *cursor_params,
                    {"name": "max_bytes", "in": "query", "description": "bytes of logged records per page, "
                     "at most the server's WORKBENCH_LOG_PAGE_BYTES; a page holds at least one record",
                     "schema": {"type": "integer", "minimum": 1, "maximum": max_page_bytes}},
                ],
                "responses": page_responses,
            }},
            "/workbench/feedback": {"get": {
                "summary": "Recorded feedback after a cursor",
                "operationId": "feedback_records",
                "parameters": [
                    *cursor_params,
                ],
                "responses": page_responses,
            }},
        },
        "components": {"schemas": {
            "FeedbackItem": _FEEDBACK_ITEM,
            "FeedbackResponse": _FEEDBACK_RESPONSE,
            "Error": _ERROR,
            "MlflowError": _MLFLOW_ERROR,
            "RequestInput": _TENSOR,
            "ResponseOutput": _TENSOR,
            "InferenceRequest": _INFER_REQUEST,
            "InferenceResponse": _INFER_RESPONSE,
            "ExplanationResponse": _EXPLAIN_RESPONSE,
            "Invocations": _INVOCATIONS,
        }},
    }
