"""moto as ecssd's AWS, corrected where moto differs from Route53 and ECS in ways ecssd relies on.

Run: python ecssd_moto.py [--port 0]. Prints "ECSSD_MOTO_READY http://127.0.0.1:<port>" once serving,
and exits when its standard input closes, so a test that dies never leaves a server behind.

Each fix below is proven by tests/tests/emulator_fidelity.rs:
  Route53
  - ListResourceRecordSets honours StartRecordIdentifier and returns NextRecordIdentifier (moto ignores
    both and loops forever inside one name's multivalue records).
  - ChangeResourceRecordSets is atomic (also when requests run concurrently) and checked like Route53: CREATE of an existing
    name/type/SetIdentifier, DELETE of a missing record, and DELETE whose TTL or values differ from the
    current ones are rejected with InvalidChangeBatch, and nothing in the batch applies (moto duplicates,
    deletes every record sharing a SetIdentifier, and ignores the values).
  ECS
  - tasks stay RUNNING until stopped (moto's state manager moves them toward STOPPED on every describe),
    and carry startedAt (moto has none; the sweeper's health-check grace period counts from it);
  - ListTasks returns only RUNNING tasks unless asked otherwise, of the named cluster only;
  - DescribeTasks answers for the named cluster only and reports unknown tasks as MISSING failures;
  - hostPort 0 (dynamic) does not reserve port 0, so many such tasks fit on one instance;
  - containers carry networkBindings (one container per definition, dynamic host ports assigned).
  Harness controls (not AWS APIs, under /_ecssd/):
  - POST /_ecssd/faults {"route53": {"rate_per_second": 5, "burst": 5, "errors": [[500, "InternalError"]]}}
    throttles a service like AWS's request limits and fails its next requests with the listed errors;
  - GET /_ecssd/stats: requests per service and operation, and how many were throttled or failed;
  - requests signed with the access key ECSSDOBSERVER bypass faults and stats (a test's observer);
  - POST /_ecssd/agent {"cluster": ..., "containerInstance": ..., "connected": false}: an ECS agent
    disconnecting, which has no AWS API.
"""

import argparse
import copy
import json
import os
import re
import signal
import sys
import threading
import time

from moto.moto_api import state_manager
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.route53 import models as r53_models
from moto.route53 import responses as r53_responses
from moto.route53.exceptions import InvalidInput, Route53ClientError
from moto.route53.models import RecordSet, reverse_domain_name
from moto.ecs import models as ecs_models
from moto.core.utils import utcnow
from moto.ecs import responses as ecs_responses
from werkzeug.serving import make_server


# ---------------------------------------------------------------------------------------------- Route53

class InvalidChangeBatchMessages(Route53ClientError):
    def __init__(self, messages):
        super().__init__("InvalidChangeBatch", "; ".join(messages))


def _norm_name(name):
    name = name.lower()
    return name if name.endswith(".") else name + "."


def _record_key(rrset):
    return (_norm_name(rrset.name), rrset.type, rrset.set_identifier or "")


def _sort_key(rrset):
    name, rtype, set_id = _record_key(rrset)
    return (reverse_domain_name(name), rtype, set_id)


def _describe(name, rtype, set_id):
    text = f"[name='{name}', type='{rtype}'"
    if set_id:
        text += f", set-identifier='{set_id}'"
    return text + "]"


def _same_content(rrset, wanted):
    """Route53 deletes only when every property matches the current record set."""
    ttl = wanted.get("TTL")
    values = sorted(v["Value"] for v in wanted.get("ResourceRecords", []))
    return (
        (rrset.ttl is None and ttl is None or rrset.ttl is not None and ttl is not None and int(rrset.ttl) == int(ttl))
        and sorted(rrset.records or []) == values
        and (rrset.alias_target or None) == (wanted.get("AliasTarget") or None)
        and bool(rrset.multi_value_answer) == bool(wanted.get("MultiValueAnswer"))
        and (rrset.weight is None) == (wanted.get("Weight") is None)
    )


# moto serves requests on many threads but its zones are plain lists; Route53 applies each batch
# atomically, so batches (and listings) are serialised here, or concurrent batches lose updates.
_ZONE_LOCK = threading.RLock()


def change_resource_record_sets(self, zoneid, change_list):
    with _ZONE_LOCK:
        _change_resource_record_sets(self, zoneid, change_list)


def _change_resource_record_sets(self, zoneid, change_list):
    zone = self.get_hosted_zone(zoneid)
    zone_name = zone.name.strip(".").lower()
    working = list(zone.rrsets)
    errors = []
    for change in change_list:
        action = change["Action"]
        wanted = copy.deepcopy(change["ResourceRecordSet"])
        r53_models.validate_domain_name(wanted["Name"], code="InvalidChangeBatch")
        name = _norm_name(wanted["Name"])
        if not (name.strip(".") == zone_name or name.strip(".").endswith("." + zone_name)):
            errors.append(f"RRSet with DNS name {name} is not permitted in zone {zone.name}")
            continue
        key = (name, wanted["Type"], wanted.get("SetIdentifier") or "")
        current = next((r for r in working if _record_key(r) == key), None)
        label = _describe(*key)
        if action == "DELETE":
            if current is None:
                errors.append(f"Tried to delete resource record set {label} but it was not found")
            elif not _same_content(current, wanted):
                errors.append(f"Tried to delete resource record set {label} but the values provided do not match the current values")
            else:
                working.remove(current)
            continue
        if action not in ("CREATE", "UPSERT"):
            errors.append(f"Invalid action {action}")
            continue
        if action == "CREATE" and current is not None:
            errors.append(f"Tried to create resource record set {label} but it already exists")
            continue
        siblings = [r for r in working if _record_key(r)[:2] == key[:2] and r is not current]
        if siblings and (not key[2] or any(not r.set_identifier for r in siblings)):
            errors.append(f"RRSet of type {key[1]} with DNS name {name} is not permitted because a conflicting RRSet of type {key[1]} with the same DNS name already exists in zone {zone.name}")
            continue
        wanted["Name"] = name
        wanted["ResourceRecords"] = [v["Value"] for v in wanted.get("ResourceRecords", [])]
        if current is not None:
            working.remove(current)
        working.append(RecordSet(wanted))
    if errors:
        raise InvalidChangeBatchMessages(errors)
    zone.rrsets = working
    for change in change_list:
        zone.rr_changes.append(copy.deepcopy(change))


def list_resource_record_sets_response(self):
    zoneid = self._get_param("HostedZoneId")
    start_type = self._get_param("StartRecordType")
    start_name = self._get_param("StartRecordName")
    start_id = self._get_param("StartRecordIdentifier")
    max_items = self._get_int_param("MaxItems", 300)
    if start_type and not start_name or start_id and not start_type:
        raise InvalidInput("The input is not valid")
    zone = self.backend.get_hosted_zone(zoneid)
    with _ZONE_LOCK:
        ordered = sorted(zone.rrsets, key=_sort_key)
    if start_name:
        start = (reverse_domain_name(_norm_name(start_name)), start_type or "", start_id or "")
        ordered = [r for r in ordered if _sort_key(r) >= start]
    page, rest = ordered[:max_items], ordered[max_items:]
    result = {"ResourceRecordSets": page, "IsTruncated": bool(rest), "MaxItems": max_items}
    if rest:
        result["NextRecordName"] = rest[0].name
        result["NextRecordType"] = rest[0].type
        if rest[0].set_identifier:
            result["NextRecordIdentifier"] = rest[0].set_identifier
    return r53_responses.ActionResult(result)


r53_models.Route53Backend.change_resource_record_sets = change_resource_record_sets
r53_responses.Route53.list_resource_record_sets = list_resource_record_sets_response


# -------------------------------------------------------------------------------------------------- ECS

state_manager.set_transition(model_name="ecs::task", transition={"progression": "manual", "times": 2**62})

_original_requirements = ecs_models.EC2ContainerServiceBackend._calculate_task_resource_requirements


def _requirements_without_dynamic_ports(task_definition):
    requirements = _original_requirements(task_definition)
    requirements["PORTS"] = [p for p in requirements["PORTS"] if int(p) != 0]
    return requirements


ecs_models.EC2ContainerServiceBackend._calculate_task_resource_requirements = staticmethod(_requirements_without_dynamic_ports)

# ECS assigns dynamic host ports from the ephemeral range, per container instance.
_next_dynamic_port = {}
_original_task_init = ecs_models.Task.__init__


def _task_init(self, cluster, task_definition, container_instance_arn, *args, **kwargs):
    _original_task_init(self, cluster, task_definition, container_instance_arn, *args, **kwargs)
    mode = task_definition.network_mode or "bridge"
    containers = []
    for definition in task_definition.container_definitions:
        container = ecs_models.Container(task_definition)
        container.name = definition.get("name")
        container.image = definition.get("image")
        container.cpu = definition.get("cpu", 0)
        container.memory = definition.get("memory")
        container.environment = definition.get("environment")
        container.last_status = "RUNNING"
        container.task_arn = self.task_arn
        bindings = []
        if mode != "awsvpc":
            for mapping in definition.get("portMappings", []):
                container_port = int(mapping.get("containerPort", 0))
                host_port = int(mapping.get("hostPort", 0 if mode == "bridge" else container_port))
                if host_port == 0:
                    host_port = _next_dynamic_port.get(container_instance_arn, 49153)
                    _next_dynamic_port[container_instance_arn] = host_port + 1
                bindings.append({
                    "bindIP": "0.0.0.0",
                    "containerPort": container_port,
                    "hostPort": host_port,
                    "protocol": mapping.get("protocol", "tcp"),
                })
        container.network_bindings = bindings
        containers.append(container)
    self.containers = containers
    self.started_at = utcnow()


ecs_models.Task.__init__ = _task_init


def _task_in_cluster(backend, cluster_str):
    cluster = backend._get_cluster(cluster_str)
    return cluster, backend.tasks.get(cluster.name, {})


def describe_tasks_response(self):
    cluster, tasks = _task_in_cluster(self.ecs_backend, self._get_param("cluster", "default"))
    wanted = self._get_param("tasks", [])
    if not wanted:
        raise ecs_models.InvalidParameterException("Tasks cannot be empty.")
    found, failures = [], []
    for ref in wanted:
        task = next((t for arn, t in tasks.items() if ref == arn or ref == arn.split("/")[-1]), None)
        if task is None:
            failures.append({"arn": ref, "reason": "MISSING"})
        else:
            found.append(task)
    if "TAGS" in self._get_param("include", []):
        self._include_in_response(ecs_responses.DESCRIBE_TASKS_TAGS)
    else:
        self._exclude_from_response(ecs_responses.DESCRIBE_TASKS_TAGS)
    return ecs_responses.ActionResult({"tasks": found, "failures": failures})


def list_tasks_response(self):
    cluster, tasks = _task_in_cluster(self.ecs_backend, self._get_param("cluster", "default"))
    desired = self._get_param("desiredStatus") or "RUNNING"
    instance = self._get_param("containerInstance")
    family = self._get_param("family")
    started_by = self._get_param("startedBy")
    arns = [
        t.task_arn for t in tasks.values()
        if t.desired_status == desired
        and (not instance or (t.container_instance_arn or "").endswith(instance.split("/")[-1]))
        and (not family or t.task_definition_arn.split("/")[-1].split(":")[0] == family)
        and (not started_by or t.started_by == started_by)
    ]
    return ecs_responses.ActionResult({"taskArns": arns})


ecs_responses.EC2ContainerServiceResponse.describe_tasks = describe_tasks_response
ecs_responses.EC2ContainerServiceResponse.list_tasks = list_tasks_response


# ----------------------------------------------------------------------------------- harness controls

class Faults:
    """Per-service request limits and queued errors, in front of moto like AWS's own throttling."""

    def __init__(self):
        self.lock = threading.Lock()
        self.config = {}
        self.buckets = {}
        self.stats = {}

    def configure(self, config):
        with self.lock:
            for service, settings in config.items():
                self.config[service] = {
                    "rate": float(settings.get("rate_per_second", 0)),
                    "burst": float(settings.get("burst", settings.get("rate_per_second", 1))),
                    "errors": [list(e) for e in settings.get("errors", [])],
                }
                self.buckets[service] = (self.config[service]["burst"], time.monotonic())

    def admit(self, service, operation):
        """Returns None to pass the request on, or (status, code) to fail it."""
        with self.lock:
            counts = self.stats.setdefault(service, {}).setdefault(operation, {"requests": 0, "throttled": 0, "failed": 0})
            counts["requests"] += 1
            settings = self.config.get(service)
            if not settings:
                return None
            if settings["errors"]:
                counts["failed"] += 1
                return tuple(settings["errors"].pop(0))
            if settings["rate"] > 0:
                tokens, last = self.buckets[service]
                now = time.monotonic()
                tokens = min(settings["burst"], tokens + (now - last) * settings["rate"])
                if tokens < 1:
                    self.buckets[service] = (tokens, now)
                    counts["throttled"] += 1
                    return (400, "Throttling")
                self.buckets[service] = (tokens - 1, now)
            return None


FAULTS = Faults()
_CREDENTIAL_SCOPE = re.compile(r"Credential=([^/]+)/[^/]+/[^/]+/([^/]+)/")
# Requests signed with this access key bypass faults: a test observing the zone must not use up the
# request budget of the clients under test.
OBSERVER_ACCESS_KEY = "ECSSDOBSERVER"


def _service_and_operation(environ):
    match = _CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    service = match.group(2) if match else "unknown"
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return service, target.split(".")[-1]
    path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
    if service == "route53":
        if path.rstrip("/").endswith("/rrset"):
            return service, "ChangeResourceRecordSets" if method == "POST" else "ListResourceRecordSets"
        if "hostedzonesbyname" in path:
            return service, "ListHostedZonesByName"
        return service, f"{method} {re.sub(r'/hostedzone/[^/]+', '/hostedzone/{id}', path)}"
    return service, method


def _error_response(service, status, code, start_response):
    if service == "route53":
        body = (f'<?xml version="1.0"?><ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
                f"<Error><Type>Sender</Type><Code>{code}</Code><Message>injected by ecssd harness</Message></Error>"
                f"<RequestId>ecssd-fault</RequestId></ErrorResponse>").encode()
        content_type = "text/xml"
    elif service == "ec2":
        body = (f"<Response><Errors><Error><Code>{code}</Code><Message>injected by ecssd harness</Message></Error>"
                f"</Errors><RequestID>ecssd-fault</RequestID></Response>").encode()
        content_type = "text/xml"
    else:
        body = json.dumps({"__type": code, "message": "injected by ecssd harness"}).encode()
        content_type = "application/x-amz-json-1.1"
    start_response(f"{status} Injected", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def _json_response(start_response, payload):
    body = json.dumps(payload).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _set_agent(payload):
    backend = ecs_models.ecs_backends[payload.get("account", "123456789012")][payload.get("region", "us-east-1")]
    cluster = backend._get_cluster(payload["cluster"])
    instance_id = payload["containerInstance"].split("/")[-1]
    backend.container_instances[cluster.name][instance_id].agent_connected = bool(payload["connected"])


def with_harness_controls(app):
    def wrapped(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_ecssd/"):
            if path == "/_ecssd/stats":
                with FAULTS.lock:
                    return _json_response(start_response, copy.deepcopy(FAULTS.stats))
            length = int(environ.get("CONTENT_LENGTH") or 0)
            payload = json.loads(environ["wsgi.input"].read(length) or b"{}")
            if path == "/_ecssd/faults":
                FAULTS.configure(payload)
            elif path == "/_ecssd/agent":
                _set_agent(payload)
            else:
                start_response("404 Not Found", [("Content-Length", "0")])
                return [b""]
            return _json_response(start_response, {"ok": True})
        service, operation = _service_and_operation(environ)
        if f"Credential={OBSERVER_ACCESS_KEY}/" in environ.get("HTTP_AUTHORIZATION", ""):
            return app(environ, start_response)
        verdict = FAULTS.admit(service, operation)
        if verdict is not None:
            return _error_response(service, verdict[0], verdict[1], start_response)
        return app(environ, start_response)

    return wrapped


def _exit_when_stdin_closes():
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--keep-stdin", action="store_true", help="do not exit when stdin closes")
    args = parser.parse_args()
    app = with_harness_controls(DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    os.environ["MOTO_PORT"] = str(server.server_port)
    if not args.keep_stdin:
        # Ctrl-C reaches the whole process group; moto must outlive the sidecars' withdrawal, and it
        # exits anyway once its parent is gone and stdin closes.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        threading.Thread(target=_exit_when_stdin_closes, daemon=True).start()
    print(f"ECSSD_MOTO_READY http://{args.host}:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
