"""Schemathesis against a service app's own OpenAPI document, in process: bounded, seeded, summed up.

`fuzz(app, max_examples=..., seed=...)` loads /openapi.json from the app over schemathesis's ASGI
transport (no socket; the app's lifespan runs as a server would run it), sends every documented
operation `max_examples` generated requests that fit its schema and `max_examples` that do not
(wrong types, out-of-range and hostile text, missing fields), and checks each answer: no 5xx, a
status code, content type and body the document declares, and a 4xx for input the schema refuses.
It returns counts per operation and in total, and the failing examples (with a curl command that
reproduces each), so a test can assert on them and `bench/reliability.py` can report them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import hypothesis
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.errors import FailureGroup
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
KEEP_FAILURES = 5  # failing examples kept per operation, mode and failure kind


def fuzz(app: Any, *, max_examples: int = 50, seed: int = 0, api_key: str | None = None, send_key: bool = True,
         modes: tuple[GenerationMode, ...] = MODES) -> dict[str, Any]:
    """Fuzz every operation of `app`'s OpenAPI document; returns the counts (total and per operation) and the
    failing examples.

    With `api_key` the document is read with it, and every case sends it unless `send_key` is false (then the
    answers should all be 401: the counts say how many were). The app's lifespan starts on the first request
    and ends before this returns.
    """
    headers = {"X-API-Key": api_key} if api_key is not None else {}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=headers)
    # A body over the size limit is refused unread with a 413: a rejection like a 422 (the check's default
    # list lacks it, so an oversized invalid body counted as "accepted").
    rejection = schema.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    sent = headers if send_key else {}
    operations: dict[str, dict[str, Any]] = {}
    try:
        for loaded in schema.get_all_operations():
            if isinstance(loaded, Err):
                raise loaded.err()  # a document schemathesis cannot read is a failure of its own
            operation = loaded.ok()
            result = operations[operation.label] = {"cases": 0, "server_errors": 0, "schema_failures": 0,
                                                    "statuses": Counter(), "failed_checks": Counter(),
                                                    "failures": []}
            for mode in modes:
                _run(operation, mode, result, max_examples=max_examples, seed=seed, headers=sent)
    finally:
        asgi.shutdown_lifespans()  # (schemathesis keeps an app's lifespan running until told)
    for result in operations.values():
        result["statuses"] = dict(sorted(result["statuses"].items()))
        result["failed_checks"] = dict(result["failed_checks"])
    return {"cases": sum(r["cases"] for r in operations.values()),
            "server_errors": sum(r["server_errors"] for r in operations.values()),
            "schema_failures": sum(r["schema_failures"] for r in operations.values()),
            "failures": [f for r in operations.values() for f in r["failures"]],
            "operations": operations}


def _run(operation: Any, mode: GenerationMode, result: dict[str, Any], *, max_examples: int, seed: int,
         headers: dict[str, str]) -> None:
    """Send `max_examples` cases of `mode` to `operation`, adding up what came back in `result`."""
    checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])
    kept: Counter[tuple[str, str]] = Counter()

    def record(kind: str, case: Any, status: int | None, message: str) -> None:
        result["failed_checks"][f"{mode.value}: {kind} ({status or 'exception'})"] += 1
        kept[(mode.value, kind)] += 1
        if kept[(mode.value, kind)] <= KEEP_FAILURES:
            try:
                curl = case.as_curl_command(headers=headers)
            except Exception as exc:  # noqa: BLE001  (a case that cannot be written as curl is still reported)
                curl = f"(no curl: {exc})"
            result["failures"].append({"operation": operation.label, "mode": mode.value, "kind": kind,
                                       "status": status, "message": message[:2000], "curl": curl[:2000]})

    def one(case: Any) -> None:
        result["cases"] += 1
        try:
            response = case.call(headers=headers)
        except Exception as exc:  # noqa: BLE001  (an exception out of the app is a 500 a server would send)
            result["server_errors"] += 1
            result["statuses"][500] += 1
            record("Unhandled exception", case, None, f"{type(exc).__name__}: {exc}")
            return
        result["statuses"][response.status_code] += 1
        if response.status_code >= 500:
            result["server_errors"] += 1
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except FailureGroup as group:
            if any(f.title != "Server error" for f in group.exceptions):
                result["schema_failures"] += 1
            for failure in group.exceptions:
                record(failure.title, case, response.status_code, failure.message)

    test = hypothesis.given(operation.as_strategy(generation_mode=mode))(one)
    test = hypothesis.settings(max_examples=max_examples, database=None, deadline=None, phases=[Phase.generate],
                               suppress_health_check=list(HealthCheck), print_blob=False)(test)
    try:
        hypothesis.seed(seed)(test)()
    except hypothesis.errors.Unsatisfiable:
        pass  # nothing of this mode to generate (negative data for an operation that takes no input)
