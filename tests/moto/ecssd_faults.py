"""Fault injection in front of moto, like AWS's own request limits: which service and operation a
request is, the error codes allowed (checked against the service models botocore ships, the ones the
Rust SDK is generated from), per-service throttling and queued errors with per-operation stats, and the
error response in each service's protocol. Configured with POST /_ecssd/faults (ecssd_moto.py)."""

import io
import json
import os
import re
import threading
import time
import urllib.parse

import botocore.session

from ecssd_limits import LIMITS
from ecssd_route53 import PRIOR_REQUEST_NOT_COMPLETE, route53_error_body, xml_escape


# aws-runtime (the Rust SDK's retry classifier), src/retries/classifiers.rs THROTTLING_ERRORS, less the
# codes that are one service's modeled errors (ProvisionedThroughputExceededException,
# TransactionInProgressException, BandwidthLimitExceeded, LimitExceededException,
# PriorRequestNotComplete): those must be injected for an operation whose model lists them.
GENERIC_THROTTLING_CODES = ("Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
                            "TooManyRequestsException", "RequestLimitExceeded", "RequestThrottled", "SlowDown",
                            "EC2ThrottledException")
GENERIC_THROTTLING_STATUSES = (400, 429)
# AWS's generic server errors (each service's "Common Errors" API reference page: InternalFailure 500,
# ServiceUnavailable 503; Route53 and EC2 answer InternalError).
GENERIC_SERVER_CODES = ("InternalError", "InternalFailure", "ServiceUnavailable")
GENERIC_SERVER_STATUSES = range(500, 505)

# Messages the services send with these codes, where known; otherwise a neutral one.
MESSAGES = {
    "PriorRequestNotComplete": PRIOR_REQUEST_NOT_COMPLETE,
    "Throttling": "Rate exceeded",
    "ThrottlingException": "Rate exceeded",
    "RequestLimitExceeded": "Request limit exceeded.",
    "InternalError": "An internal error occurred.",
    "InternalFailure": "The request processing has failed because of an unknown error, exception or failure.",
    "ServiceUnavailable": "The request has failed due to a temporary failure of the server.",
    "ServerException": "Service Unavailable. Please try again later.",
}


class ServiceModels:
    """The AWS service models botocore ships: the same Smithy-derived models the Rust SDK is generated
    from, so an error code valid here is one the SDK decodes into a modeled variant."""

    def __init__(self):
        self.session = botocore.session.get_session()
        self.cache = {}
        self.lock = threading.Lock()

    def get(self, service):
        with self.lock:
            if service not in self.cache:
                try:
                    self.cache[service] = self.session.get_service_model(service)
                except Exception:  # noqa: BLE001 - any failure means "no such model here"
                    self.cache[service] = None
            return self.cache[service]

    def raw_shapes(self, service):
        with self.lock:
            key = ("raw", service)
            if key not in self.cache:
                self.cache[key] = self.session.get_component("data_loader").load_service_model(service, "service-2")["shapes"]
            return self.cache[key]

    def modeled_errors(self, service, operation):
        """{code: (status, shape name)} for an operation; the code is the shape's error.code, else its
        name; the status is its error.httpStatusCode, else Smithy's default for the error's kind (httpError
        trait: 500 for a server error, "fault": true in this JSON form, 400 for a client error)."""
        model = self.get(service)
        raw = self.raw_shapes(service)
        errors = {}
        for shape in model.operation_model(operation).error_shapes:
            error = shape.metadata.get("error", {})
            default = 500 if raw.get(shape.name, {}).get("fault") else 400
            errors[error.get("code", shape.name)] = (int(error.get("httpStatusCode", default)), shape.name)
        return errors

    def operation_for_rest(self, service, method, path):
        """The operation a rest-xml / rest-json request is, from the model's requestUri templates."""
        model = self.get(service)
        if model is None:
            return None
        routes = self.cache.setdefault(("routes", service), None)
        if routes is None:
            routes = []
            for name in model.operation_names:
                http = model.operation_model(name).http
                uri = http.get("requestUri", "/").split("?")[0].rstrip("/")
                literal = len(re.sub(r"\{[^}]+\}", "", uri))
                pattern = re.sub(r"\\\{[^}]+?\\\+\\\}", ".+", re.escape(uri))
                pattern = re.sub(r"\\\{[^}]+?\\\}", "[^/]+", pattern)
                routes.append((http.get("method"), re.compile("^" + pattern + "/?$"), literal, name))
            self.cache[("routes", service)] = routes
        matches = [(literal, name) for m, rx, literal, name in routes if m == method and rx.match(path)]
        return max(matches)[1] if matches else None


MODELS = ServiceModels()


class FaultConfigError(Exception):
    def __init__(self, problems):
        super().__init__("; ".join(p["reason"] for p in problems))
        self.problems = problems


GENERIC_ALLOWED = {
    "throttling": {"statuses": list(GENERIC_THROTTLING_STATUSES), "codes": list(GENERIC_THROTTLING_CODES)},
    "server": {"statuses": list(GENERIC_SERVER_STATUSES), "codes": list(GENERIC_SERVER_CODES)},
}


def _is_generic(status, code):
    return (code in GENERIC_THROTTLING_CODES and status in GENERIC_THROTTLING_STATUSES
            or code in GENERIC_SERVER_CODES and status in GENERIC_SERVER_STATUSES)


def _operations_modeling(service, code):
    model = MODELS.get(service)
    return [op for op in model.operation_names
            if any(code in (c, shape) for c, (_st, shape) in MODELS.modeled_errors(service, op).items())]


def validate_fault(service, entry):
    """An error entry as {"status", "code", "operation", "message", "repeat"}, or raises
    ValueError(reason, allowed). `repeat` (object form only, default false) keeps the entry queued: it
    fails every request it matches until the service's faults are configured again, e.g. a service
    answering 5xx for as long as a test needs (AWS documents no bound on an outage)."""
    checked = _checked(service, entry)
    checked["repeat"] = bool(entry.get("repeat", False)) if isinstance(entry, dict) else False
    return checked


def _checked(service, entry):
    """The entry's {"status", "code", "operation", "message"}, checked against the service's model."""
    if isinstance(entry, dict):
        unknown = set(entry) - {"status", "code", "operation", "message", "repeat"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)} (an entry object has status, code, operation, "
                             "message and repeat)", None)
        if not isinstance(entry.get("repeat", False), bool):
            raise ValueError("repeat must be true or false", None)
        status, code, operation, message = entry.get("status"), entry.get("code"), entry.get("operation"), entry.get("message")
    elif isinstance(entry, list) and len(entry) in (2, 3):
        status, code = entry[0], entry[1]
        operation = entry[2] if len(entry) == 3 else None
        message = None
    else:
        raise ValueError("an entry is [status, code] or [status, code, operation]", None)
    if isinstance(status, bool) or not isinstance(status, int) or not isinstance(code, str):
        raise ValueError("status must be an integer and code a string", None)
    model = MODELS.get(service)
    if model is None:
        raise ValueError(f"no AWS service model named {service!r} (botocore {botocore.__version__})", None)
    if operation is None:
        if _is_generic(status, code):
            return {"status": status, "code": code, "operation": None, "message": message}
        modeling = _operations_modeling(service, code)
        hint = (f"{code} is modeled only for {', '.join(modeling)}: name the operation, [status, code, operation]"
                if modeling else f"the {service} model has no error {code!r} for any operation")
        raise ValueError(
            f"not one of AWS's generic errors (throttling: HTTP 400/429 with {', '.join(GENERIC_THROTTLING_CODES)}; "
            f"server: HTTP 500-504 with {', '.join(GENERIC_SERVER_CODES)}), and {hint}",
            {"generic": GENERIC_ALLOWED})
    if operation not in model.operation_names:
        raise ValueError(f"{service} has no operation {operation!r}", None)
    modeled = MODELS.modeled_errors(service, operation)
    by_shape = {shape: code_ for code_, (_st, shape) in modeled.items()}
    allowed = {operation: [[st, c, operation] for c, (st, _shape) in sorted(modeled.items())], "generic": GENERIC_ALLOWED}
    if code not in modeled and code in by_shape:
        code = by_shape[code]
    if code in modeled:
        if modeled[code][0] != status:
            raise ValueError(f"the {service} model gives {code} HTTP {modeled[code][0]}, not {status}", allowed)
        return {"status": status, "code": code, "operation": operation, "message": message}
    if _is_generic(status, code):
        return {"status": status, "code": code, "operation": operation, "message": message}
    modeling = _operations_modeling(service, code)
    elsewhere = f"; it is modeled for {', '.join(modeling)} only" if modeling else ""
    raise ValueError(
        f"{code!r} is not an error the {service} model lists for {operation} (it lists: "
        f"{', '.join(f'{st} {c}' for c, (st, _s) in sorted(modeled.items())) or 'none'}), nor one of AWS's "
        f"generic errors{elsewhere}",
        allowed)


class Faults:
    """Per-service request limits and queued errors, in front of moto like AWS's own throttling."""

    def __init__(self):
        self.lock = threading.Lock()
        self.config = {}
        self.buckets = {}
        self.stats = {}
        # Route53's account bucket: (rate, burst, tokens, last refill); full again when the setting changes.
        self.account_bucket = None

    def configure(self, config):
        """Validates every entry first; configures nothing and raises FaultConfigError if any is wrong."""
        if not isinstance(config, dict):
            raise FaultConfigError([{"reason": "the body is {service: {rate_per_second, burst, errors}}"}])
        new, problems = {}, []
        for service, settings in config.items():
            if not isinstance(settings, dict):
                problems.append({"service": service, "reason": f"{service}: settings must be an object"})
                continue
            unknown = set(settings) - {"rate_per_second", "burst", "errors"}
            if unknown:
                problems.append({"service": service, "reason": f"{service}: unknown keys {sorted(unknown)}"})
            errors = []
            for index, entry in enumerate(settings.get("errors", [])):
                try:
                    errors.append(validate_fault(service, entry))
                except ValueError as e:
                    reason, allowed = e.args
                    problem = {"service": service, "index": index, "entry": entry,
                               "reason": f"{service}.errors[{index}] {json.dumps(entry)}: {reason}"}
                    if allowed:
                        problem["allowed"] = allowed
                    problems.append(problem)
            rate = float(settings.get("rate_per_second", 0))
            new[service] = {"rate": rate, "burst": float(settings.get("burst", rate or 1)), "errors": errors}
        if problems:
            raise FaultConfigError(problems)
        with self.lock:
            for service, settings in new.items():
                self.config[service] = settings
                self.buckets[service] = (settings["burst"], time.monotonic())

    def admit(self, service, operation):
        """Returns None to pass the request on, or (status, code, message) to fail it."""
        with self.lock:
            counts = self.stats.setdefault(service, {}).setdefault(operation, {"requests": 0, "throttled": 0, "failed": 0})
            counts["requests"] += 1
            if service == "route53" and not self._account_admits():
                counts["throttled"] += 1
                return (400, "Throttling", MESSAGES["Throttling"])
            settings = self.config.get(service)
            if not settings:
                return None
            for index, entry in enumerate(settings["errors"]):
                if entry["operation"] is None or entry["operation"] == operation:
                    if not entry["repeat"]:
                        del settings["errors"][index]
                    counts["failed"] += 1
                    code = entry["code"]
                    return entry["status"], code, entry["message"] or MESSAGES.get(code, f"{code} (injected by the ecssd harness)")
            if settings["rate"] > 0:
                tokens, last = self.buckets[service]
                now = time.monotonic()
                tokens = min(settings["burst"], tokens + (now - last) * settings["rate"])
                if tokens < 1:
                    self.buckets[service] = (tokens, now)
                    counts["throttled"] += 1
                    # Developer Guide (Route53), Quotas, "Maximums on API requests": HTTP 400 Throttling.
                    return (400, "Throttling", MESSAGES["Throttling"])
                self.buckets[service] = (tokens - 1, now)
            return None


    def _account_admits(self):
        """Route53's account-wide token bucket (ecssd_limits: account_requests_per_second, account_burst);
        a refused request takes no token. Called under the lock."""
        rate = LIMITS.get("route53", "account_requests_per_second")
        if rate <= 0:
            return True
        burst = max(LIMITS.get("route53", "account_burst"), 1)
        now = time.monotonic()
        bucket = self.account_bucket
        tokens, last = (bucket[2], bucket[3]) if bucket and bucket[:2] == (rate, burst) else (burst, now)
        tokens = min(burst, tokens + (now - last) * rate)
        admitted = tokens >= 1
        self.account_bucket = (rate, burst, tokens - 1 if admitted else tokens, now)
        return admitted


FAULTS = Faults()
_CREDENTIAL_SCOPE = re.compile(r"Credential=([^/]+)/[^/]+/[^/]+/([^/]+)/")
# Requests signed with this access key bypass faults: a test observing the zone must not use up the
# request budget of the clients under test.
OBSERVER_ACCESS_KEY = "ECSSDOBSERVER"


def service_and_operation(environ):
    match = _CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    service = match.group(2) if match else "unknown"
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return service, target.split(".")[-1]
    path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
    model = MODELS.get(service) if service != "unknown" else None
    if model is not None and model.protocol in ("ec2", "query"):
        # Form-encoded Action=...; read the body and put it back for moto.
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        params = urllib.parse.parse_qs(body.decode("utf-8", "replace")) if body else {}
        params.update(urllib.parse.parse_qs(environ.get("QUERY_STRING", "")))
        action = params.get("Action", [None])[0]
        return service, action or method
    if model is not None and model.protocol in ("rest-xml", "rest-json"):
        operation = MODELS.operation_for_rest(service, method, path)
        if operation:
            return service, operation
    return service, f"{method} {path}"


def error_response(service, status, code, message, start_response):
    model = MODELS.get(service)
    protocol = model.protocol if model is not None else "json"
    request_id = f"ecssd-{os.urandom(8).hex()}"
    if protocol == "rest-xml":
        body = route53_error_body(status, code, message).encode()
        content_type = "text/xml"
    elif protocol == "ec2":
        # EC2 API reference, "Error codes": <Response><Errors><Error><Code/><Message/></Error></Errors>
        # <RequestID/></Response>.
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
                f"<Message>{xml_escape(message)}</Message></Error></Errors><RequestID>{request_id}</RequestID>"
                "</Response>").encode()
        content_type = "text/xml"
    elif protocol == "query":
        body = (f'<ErrorResponse><Error><Type>{"Receiver" if status >= 500 else "Sender"}</Type><Code>{code}</Code>'
                f"<Message>{xml_escape(message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>").encode()
        content_type = "text/xml"
    else:
        # awsJson1_1 (ECS): {"__type": code, "message": ...}.
        body = json.dumps({"__type": code, "message": message}).encode()
        content_type = "application/x-amz-json-1.1"
    start_response(f"{status} Injected", [("Content-Type", content_type), ("Content-Length", str(len(body))),
                                          ("x-amzn-RequestId", request_id)])
    return [body]
