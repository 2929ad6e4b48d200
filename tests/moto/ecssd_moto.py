"""moto as ecssd's AWS, corrected where moto differs from AWS's documented contract in ways ecssd relies on.

Run: python ecssd_moto.py [--port 0] [--max-rrsets-per-zone 10000] [--change-processing-ms 100]. Prints
"ECSSD_MOTO_READY http://127.0.0.1:<port>" once serving, and exits when its standard input closes, so a
test that dies never leaves a server behind.

Every rule names the AWS page it follows; where AWS's documentation is silent the rule says so and picks
the stricter behaviour. Each is proven by tests/tests/emulator_fidelity.rs through the real Rust SDK.

  Route53 (API reference: ChangeResourceRecordSets, ListResourceRecordSets, ResourceRecord; Developer
  Guide: "Quotas", "Supported DNS record types")
  - ListResourceRecordSets honours StartRecordIdentifier and returns NextRecordIdentifier (moto ignores
    both and loops forever inside one name's multivalue records). [API ref, ListResourceRecordSets]
  - ChangeResourceRecordSets is atomic, also when requests run concurrently: nothing in a rejected batch
    applies. [API ref, ChangeResourceRecordSets: "...either all of the changes ... are made or none"]
  - Stale-view conflicts are InvalidChangeBatch with Route53's own messages (moto duplicates, deletes
    every record sharing a SetIdentifier, and ignores values): "Tried to create resource record set
    [name='x.', type='A'] but it already exists", "Tried to delete resource record set [name='x.',
    type='A'] but it was not found", "... but the values provided do not match the current values"
    (", set-identifier='id'" inside the brackets when the record has one). [API ref,
    ChangeResourceRecordSets, CREATE/DELETE]
  - One error response per rejected batch, all problems in it: HTTP 400, rest-xml ErrorResponse, Code
    InvalidChangeBatch, Message "[msg1, msg2]" (Route53 answers this form since 2024: aws-sdk-kotlin
    issue 1433 / PR 1435; the old <InvalidChangeBatch><Messages> body is no longer sent).
  - Per-zone change serialisation: a change that arrives while the zone's previous accepted change is
    still being processed gets HTTP 400 PriorRequestNotComplete, "The request was rejected because
    Route 53 was still processing a prior request." The processing window (default 100 ms, harness
    setting) is not propagation to INSYNC; AWS documents no duration. [API ref, ChangeResourceRecordSets
    errors; Developer Guide, Quotas, "Maximums on API requests"]
  - Limits, each InvalidChangeBatch with Route53's message (see the constants below for the wording):
    100 records with the same name and type and a non-simple routing policy (a SetIdentifier); 400
    values (ResourceRecord elements) per record; a TXT/SPF character-string of at most 255 characters;
    1,000 ResourceRecord elements and 32,000 characters of Value per request, UPSERT counting twice;
    10,000 records per hosted zone (MAX_RRSETS_BY_ZONE, a harness setting). [Developer Guide, Quotas;
    "Supported DNS record types", TXT]
  ECS (API reference: ListTasks, ListContainerInstances, DescribeTasks, DescribeContainerInstances)
  - tasks stay RUNNING until stopped (moto's state manager moves them toward STOPPED on every describe),
    and carry startedAt (moto has none; the sweeper's health-check grace period counts from it);
  - ListTasks returns only RUNNING tasks unless asked otherwise, of the named cluster only;
  - ListTasks and ListContainerInstances return at most maxResults (1-100, default 100) per page and a
    nextToken to continue; maxResults outside 1-100 is InvalidParameterException, wording the bed's own
    (moto returns everything in one page);
  - DescribeTasks answers for the named cluster only and reports unknown tasks as MISSING failures;
  - DescribeTasks and DescribeContainerInstances reject more than 100 identifiers with
    InvalidParameterException "taskIds can have at most 100 items." / "instanceIds can have at most 100
    items." (real responses quoted in public issues; moto accepts any number);
  - hostPort 0 (dynamic) does not reserve port 0, so many such tasks fit on one instance;
  - containers carry networkBindings (one container per definition, dynamic host ports assigned).
  EC2 (User Guide, "Instance lifecycle"; API reference: DescribeInstances, Instance)
  - a terminated instance is described without private or public IP address (the lifecycle table: "None"
    on Terminate), and, where the docs are silent on timing, at once without its private DNS name,
    network interfaces, subnet and VPC: the stricter choice (moto keeps them all). Terminate it with
    EC2 TerminateInstances.
  Harness controls (not AWS APIs, under /_ecssd/):
  - POST /_ecssd/faults {"route53": {"rate_per_second": 5, "burst": 5, "errors": [[500, "InternalError"],
    [400, "PriorRequestNotComplete", "ChangeResourceRecordSets"]]}} throttles a service like AWS's
    request limits (HTTP 400 Throttling "Rate exceeded") and queues errors. Codes are checked against the
    service model botocore ships (the one the Rust SDK is generated from): [status, code] only for AWS's
    generic errors (throttling: 400/429 with a code in aws-runtime's THROTTLING_ERRORS; 5xx: 500-504 with
    InternalError, InternalFailure or ServiceUnavailable), failing the service's next request;
    [status, code, operation] only for an error the model lists for that operation, at the model's
    status, failing that operation's next request. Anything else is refused with HTTP 400 and a JSON
    body naming the entry and the allowed codes, and nothing is configured. An entry may also be an
    object {"status", "code", "operation"?, "message"?}.
  - POST /_ecssd/limits {"route53": {"max_rrsets_per_zone": 10000, "change_processing_ms": 100}};
    GET /_ecssd/limits shows them.
  - GET /_ecssd/stats: requests per service and operation, and how many were throttled or failed;
  - requests signed with the access key ECSSDOBSERVER bypass faults and stats (a test's observer);
  - POST /_ecssd/agent {"cluster": ..., "containerInstance": ..., "connected": false}: an ECS agent
    disconnecting, which has no AWS API.
"""

import argparse
import base64
import copy
import io
import json
import os
import re
import signal
import sys
import threading
import time
import urllib.parse

import botocore.session
from moto.moto_api import state_manager
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.route53 import models as r53_models
from moto.route53 import responses as r53_responses
from moto.route53.exceptions import InvalidInput
from moto.route53.models import RecordSet, reverse_domain_name
from moto.ec2.models import instances as ec2_instances
from moto.ecs import models as ecs_models
from moto.core.utils import utcnow
from moto.ecs import responses as ecs_responses
from werkzeug.serving import make_server


# ----------------------------------------------------------------------------------- harness settings

class Limits:
    """Settings of the bed that AWS sets per account or zone; changed with POST /_ecssd/limits."""

    DEFAULTS = {
        "route53": {
            # Developer Guide, Quotas, "Quotas on records": 10,000 records per hosted zone by default
            # (MAX_RRSETS_BY_ZONE, raised on request: API ref, GetHostedZoneLimit / HostedZoneLimit).
            "max_rrsets_per_zone": 10000,
            # How long Route53 is "still processing" an accepted change. API ref, ChangeResourceRecordSets
            # (PriorRequestNotComplete) documents the rejection but no duration: short by default.
            "change_processing_ms": 100,
        },
    }

    def __init__(self):
        self.lock = threading.Lock()
        self.values = copy.deepcopy(self.DEFAULTS)

    def configure(self, payload):
        """Checks every setting before changing any; returns a list of problems (empty when applied)."""
        problems = []
        for service, settings in payload.items():
            known = self.DEFAULTS.get(service)
            if known is None or not isinstance(settings, dict):
                problems.append(f"unknown service {service!r}: settings exist for {sorted(self.DEFAULTS)}")
                continue
            for key, value in settings.items():
                if key not in known:
                    problems.append(f"unknown {service} setting {key!r}: known are {sorted(known)}")
                elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    problems.append(f"{service}.{key} must be a non-negative integer, got {value!r}")
        if not problems:
            with self.lock:
                for service, settings in payload.items():
                    self.values[service].update(settings)
        return problems

    def get(self, service, key):
        with self.lock:
            return self.values[service][key]

    def snapshot(self):
        with self.lock:
            return copy.deepcopy(self.values)


LIMITS = Limits()


# ---------------------------------------------------------------------------------------------- Route53

# Fixed Route53 quotas. Developer Guide, Quotas ("Quotas on records" and "Maximums on API requests").
MAX_SAME_NAME_AND_TYPE = 100      # records with the same name and type and a non-simple routing policy
MAX_VALUES_PER_RECORD = 400       # "Values in a record"
MAX_RESOURCE_RECORDS_PER_REQUEST = 1000   # ResourceRecord elements in one request, UPSERT counted twice
MAX_VALUE_CHARACTERS_PER_REQUEST = 32000  # characters of Value in one request, UPSERT counted twice
# Developer Guide, "Supported DNS record types", TXT: each character-string at most 255 characters.
MAX_CHARACTER_STRING = 255

# Route53's own wording of each rejection (as Route53 returns them: quoted in public reports of real
# responses where the API reference gives no text; see the report accompanying each constant).
PRIOR_REQUEST_NOT_COMPLETE = "The request was rejected because Route 53 was still processing a prior request."
# DNSControl issues 508/1114, cli53 issue 248, cookpad/roadworker PR 92 (real responses).
TOO_MANY_RESOURCE_RECORDS = f"Number of records limit of {MAX_RESOURCE_RECORDS_PER_REQUEST} exceeded."
# DNSControl issue 908, kubernetes/kops issue 4495, external-dns issue 515 (real responses).
TOO_MANY_VALUE_CHARACTERS = f"RDATA character limit of {MAX_VALUE_CHARACTERS_PER_REQUEST} exceeded."
# DNSControl issue 908 (real response).
ZONE_FULL = "Exceeded limit MAX_RRSETS_BY_ZONE for zone: {zone_id}"
# boto3 issue 1462, mail-in-a-box issue 1839 (real responses).
CHARACTER_STRING_TOO_LONG = ("Invalid Resource Record: FATAL problem: CharacterStringTooLong (Value is too long) "
                             "encountered with '{value}'")
# airbnb/zonify issue 16 (a real response for weighted records; no report of the multivalue wording
# was found, so the same text serves every non-simple routing policy).
TOO_MANY_SAME_NAME_AND_TYPE = "Exceeded limit on number of {policy} RRSets for {name}, type {rtype} in this zone."
# rancher issue 10253 quotes "Cannot have more than 100 records in a RRSet." from when the quota was 100.
TOO_MANY_VALUES = f"Cannot have more than {MAX_VALUES_PER_RECORD} records in a RRSet."


class Route53Error(Exception):
    """A Route53 error response: rest-xml ErrorResponse (API ref, "Common Errors"; rest-xml protocol)."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def invalid_change_batch(messages):
    # Route53 lists every problem of the batch in one Message, "[first, second]", since 2024
    # (aws-sdk-kotlin issue 1433 and PR 1435 quote real responses; the SDKs dropped their parsers for
    # the former <InvalidChangeBatch><Messages> body). The Rust SDK's InvalidChangeBatch.message is it.
    return Route53Error(400, "InvalidChangeBatch", "[" + ", ".join(messages) + "]")


def _xml_escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def route53_error_body(status, code, message):
    kind = "Receiver" if status >= 500 else "Sender"
    return (f'<?xml version="1.0"?>\n<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
            f"<Error><Type>{kind}</Type><Code>{code}</Code><Message>{_xml_escape(message)}</Message></Error>"
            f"<RequestId>ecssd-{os.urandom(8).hex()}</RequestId></ErrorResponse>")


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


def _routing_policy(wanted):
    if wanted.get("Weight") is not None:
        return "weighted"
    if wanted.get("MultiValueAnswer"):
        return "multivalue"
    if wanted.get("Failover"):
        return "failover"
    if wanted.get("Region"):
        return "latency"
    if wanted.get("GeoLocation"):
        return "geolocation"
    return "non-simple"


def character_strings(value):
    """The character-strings of a TXT value: quoted strings (backslash escapes \\" \\\\ \\ddd decoded, each
    one character) separated by spaces; an unquoted run is one string. Developer Guide, "Supported DNS
    record types", TXT."""
    strings, i, n = [], 0, len(value)
    while i < n:
        if value[i] == " ":
            i += 1
            continue
        if value[i] == '"':
            i += 1
            out = []
            while i < n and value[i] != '"':
                if value[i] == "\\" and i + 3 < n and all(c in "01234567" for c in value[i + 1:i + 4]):
                    out.append(chr(int(value[i + 1:i + 4], 8) % 256))
                    i += 4
                elif value[i] == "\\" and i + 1 < n:
                    out.append(value[i + 1])
                    i += 2
                else:
                    out.append(value[i])
                    i += 1
            i += 1
            strings.append("".join(out))
        else:
            j = value.find(" ", i)
            j = n if j < 0 else j
            strings.append(value[i:j])
            i = j
    return strings


# moto serves requests on many threads but its zones are plain lists; Route53 applies each batch
# atomically, so batches (and listings) are serialised here, or concurrent batches lose updates.
_ZONE_LOCK = threading.RLock()
# Per zone: when (time.monotonic()) Route53 accepted the zone's last change; it is still processing it
# for change_processing_ms after that (the setting read at each request, so a change applies at once).
_ZONE_ACCEPTED_AT = {}


def change_resource_record_sets(self, zoneid, change_list):
    with _ZONE_LOCK:
        _change_resource_record_sets(self, zoneid, change_list)


def _request_size_problems(change_list):
    # Developer Guide, Quotas, "Maximums on API requests", ChangeResourceRecordSets: "A request cannot
    # contain more than 1,000 ResourceRecord elements" and "The sum of the number of characters
    # (including spaces) in all Value elements in a request can't exceed 32,000 characters"; when the
    # Action is UPSERT, each ResourceRecord element / each character in a Value is counted twice.
    elements = characters = 0
    for change in change_list:
        weight = 2 if change.get("Action") == "UPSERT" else 1
        for record in change["ResourceRecordSet"].get("ResourceRecords") or []:
            elements += weight
            characters += weight * len(record.get("Value", ""))
    problems = []
    if elements > MAX_RESOURCE_RECORDS_PER_REQUEST:
        problems.append(TOO_MANY_RESOURCE_RECORDS)
    if characters > MAX_VALUE_CHARACTERS_PER_REQUEST:
        problems.append(TOO_MANY_VALUE_CHARACTERS)
    return problems


def _change_resource_record_sets(self, zoneid, change_list):
    zone = self.get_hosted_zone(zoneid)
    # API ref, ChangeResourceRecordSets, errors: PriorRequestNotComplete (HTTP 400) "If you already
    # submitted a request and Route 53 is still processing it". Checked first: a zone still busy
    # processing its previous change does not look at this one. Docs silent on the duration.
    window = LIMITS.get("route53", "change_processing_ms") / 1000.0
    accepted_at = _ZONE_ACCEPTED_AT.get(zone.id)
    if accepted_at is not None and time.monotonic() < accepted_at + window:
        raise Route53Error(400, "PriorRequestNotComplete", PRIOR_REQUEST_NOT_COMPLETE)
    size_problems = _request_size_problems(change_list)
    if size_problems:
        raise invalid_change_batch(size_problems)
    zone_name = zone.name.strip(".").lower()
    working = list(zone.rrsets)
    errors = []
    for change in change_list:
        action = change["Action"]
        wanted = copy.deepcopy(change["ResourceRecordSet"])
        r53_models.validate_domain_name(wanted["Name"], code="InvalidChangeBatch")
        name = _norm_name(wanted["Name"])
        # API ref, ChangeResourceRecordSets: records must be in the zone (Route53's message).
        if not (name.strip(".") == zone_name or name.strip(".").endswith("." + zone_name)):
            errors.append(f"RRSet with DNS name {name} is not permitted in zone {zone.name}")
            continue
        key = (name, wanted["Type"], wanted.get("SetIdentifier") or "")
        current = next((r for r in working if _record_key(r) == key), None)
        label = _describe(*key)
        if action == "DELETE":
            # API ref, ChangeResourceRecordSets, DELETE: the values must match the current ones.
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
        # API ref, ChangeResourceRecordSets, CREATE: "returns an error if the record already exists".
        if action == "CREATE" and current is not None:
            errors.append(f"Tried to create resource record set {label} but it already exists")
            continue
        values = [v["Value"] for v in wanted.get("ResourceRecords") or []]
        # Developer Guide, Quotas, "Quotas on records": values in a record.
        if len(values) > MAX_VALUES_PER_RECORD:
            errors.append(TOO_MANY_VALUES)
            continue
        # Developer Guide, "Supported DNS record types", TXT (and SPF, same format): each string in a
        # value is at most 255 characters. Docs silent on how escapes count: decoded, as DNS does.
        if wanted["Type"] in ("TXT", "SPF"):
            too_long = [v for v in values if any(len(s) > MAX_CHARACTER_STRING for s in character_strings(v))]
            if too_long:
                errors.append(CHARACTER_STRING_TOO_LONG.format(value=too_long[0]))
                continue
        siblings = [r for r in working if _record_key(r)[:2] == key[:2] and r is not current]
        if siblings and (not key[2] or any(not r.set_identifier for r in siblings)):
            errors.append(f"RRSet of type {key[1]} with DNS name {name} is not permitted because a conflicting RRSet of type {key[1]} with the same DNS name already exists in zone {zone.name}")
            continue
        # Developer Guide, Quotas, "Quotas on records": records with the same name and type that use a
        # routing policy other than simple: 100 (and the tutorial "Managing over 100 weighted records").
        if key[2] and len(siblings) + 1 > MAX_SAME_NAME_AND_TYPE:
            errors.append(TOO_MANY_SAME_NAME_AND_TYPE.format(policy=_routing_policy(wanted), name=name, rtype=key[1]))
            continue
        wanted["Name"] = name
        wanted["ResourceRecords"] = values
        if current is not None:
            working.remove(current)
        working.append(RecordSet(wanted))
    # Developer Guide, Quotas, "Quotas on records": records per hosted zone (NS and SOA included: the
    # count GetHostedZoneLimit reports for MAX_RRSETS_BY_ZONE is every record set of the zone).
    limit = LIMITS.get("route53", "max_rrsets_per_zone")
    if not errors and len(working) > limit and len(working) > len(zone.rrsets):
        errors.append(ZONE_FULL.format(zone_id=zone.id.split("/")[-1]))
    if errors:
        raise invalid_change_batch(errors)
    zone.rrsets = working
    for change in change_list:
        zone.rr_changes.append(copy.deepcopy(change))
    _ZONE_ACCEPTED_AT[zone.id] = time.monotonic()


def change_resource_record_sets_response(self):
    zoneid = self._get_param("HostedZoneId")
    change_list = self._get_param("ChangeBatch.Changes") or []
    try:
        self.backend.change_resource_record_sets(zoneid, change_list)
    except Route53Error as e:
        body = route53_error_body(e.status, e.code, e.message)
        return e.status, {"Content-Type": "text/xml", "status": e.status}, body
    result = {"ChangeInfo": {"Id": f"/change/C{os.urandom(6).hex().upper()}", "Status": "INSYNC", "SubmittedAt": utcnow()}}
    return r53_responses.ActionResult(result)


def list_resource_record_sets_response(self):
    zoneid = self._get_param("HostedZoneId")
    start_type = self._get_param("StartRecordType")
    start_name = self._get_param("StartRecordName")
    start_id = self._get_param("StartRecordIdentifier")
    max_items = self._get_int_param("MaxItems", 300)
    # API ref, ListResourceRecordSets: StartRecordType needs StartRecordName, StartRecordIdentifier
    # needs both; at most 300 per page; NextRecordIdentifier continues inside one name and type.
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
r53_responses.Route53.change_resource_record_sets = change_resource_record_sets_response
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

# API ref, DescribeTasks ("tasks: A list of up to 100 task IDs or full ARN entries") and
# DescribeContainerInstances ("containerInstances: A list of up to 100 container instance IDs or full
# ARN entries"); ListTasks and ListContainerInstances ("maxResults ... can be between 1 and 100. If this
# parameter isn't used, then ... returns up to 100 results and a nextToken value if applicable").
ECS_MAX_IDENTIFIERS = 100
ECS_MAX_RESULTS = 100
# The API reference gives neither the exception nor the message for these; real responses reported in
# public issues do: InvalidParameterException, "taskIds can have at most 100 items." (gchq/sleeper 555,
# remind101/empire 647) and "instanceIds can have at most 100 items." (traefik/traefik 3625,
# mapbox/ecs-watchbot 81). For maxResults out of range no real message was found: InvalidParameterException
# (ECS's code for every parameter check) with the bed's own wording.
TOO_MANY_TASKS = "taskIds can have at most 100 items."
TOO_MANY_CONTAINER_INSTANCES = "instanceIds can have at most 100 items."
MAX_RESULTS_OUT_OF_RANGE = "maxResults must be between 1 and 100."
INVALID_NEXT_TOKEN = "Invalid nextToken."


def _page(self, items):
    """One page of `items` per maxResults/nextToken (ListTasks / ListContainerInstances)."""
    max_results = self._get_param("maxResults")
    if max_results is None:
        max_results = ECS_MAX_RESULTS
    if isinstance(max_results, bool) or not isinstance(max_results, int) or not 1 <= max_results <= ECS_MAX_RESULTS:
        raise ecs_models.InvalidParameterException(MAX_RESULTS_OUT_OF_RANGE)
    token = self._get_param("nextToken")
    start = 0
    if token:
        try:
            start = int(json.loads(base64.b64decode(token))["offset"])
        except (ValueError, KeyError, TypeError):
            raise ecs_models.InvalidParameterException(INVALID_NEXT_TOKEN)
    page = items[start:start + max_results]
    rest = start + max_results < len(items)
    next_token = base64.b64encode(json.dumps({"offset": start + max_results}).encode()).decode() if rest else None
    return page, next_token


def _task_in_cluster(backend, cluster_str):
    cluster = backend._get_cluster(cluster_str)
    return cluster, backend.tasks.get(cluster.name, {})


def describe_tasks_response(self):
    cluster, tasks = _task_in_cluster(self.ecs_backend, self._get_param("cluster", "default"))
    wanted = self._get_param("tasks", [])
    if not wanted:
        raise ecs_models.InvalidParameterException("Tasks cannot be empty.")
    if len(wanted) > ECS_MAX_IDENTIFIERS:
        raise ecs_models.InvalidParameterException(TOO_MANY_TASKS)
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
    page, next_token = _page(self, arns)
    return ecs_responses.ActionResult({"taskArns": page, "nextToken": next_token})


def list_container_instances_response(self):
    arns = self.ecs_backend.list_container_instances(self._get_param("cluster", "default"), status=self._get_param("status"))
    page, next_token = _page(self, arns)
    return ecs_responses.ActionResult({"containerInstanceArns": page, "nextToken": next_token})


_original_describe_container_instances = ecs_responses.EC2ContainerServiceResponse.describe_container_instances


def describe_container_instances_response(self):
    if len(self._get_param("containerInstances") or []) > ECS_MAX_IDENTIFIERS:
        raise ecs_models.InvalidParameterException(TOO_MANY_CONTAINER_INSTANCES)
    return _original_describe_container_instances(self)


ecs_responses.EC2ContainerServiceResponse.describe_tasks = describe_tasks_response
ecs_responses.EC2ContainerServiceResponse.list_tasks = list_tasks_response
ecs_responses.EC2ContainerServiceResponse.list_container_instances = list_container_instances_response
ecs_responses.EC2ContainerServiceResponse.describe_container_instances = describe_container_instances_response


# -------------------------------------------------------------------------------------------------- EC2

# A terminated instance is described without its addresses. EC2 User Guide, "Instance lifecycle",
# "Differences between reboot, stop, hibernate, and terminate": private and public IPv4 addresses on
# Terminate: "None"; "Resources ... are gradually disassociated from the terminated instance". The API
# reference (DescribeInstances, Instance) is silent on which fields go when: the stricter choice is all
# of them at once, as users report (PrivateIpAddress, PublicIpAddress, SubnetId, VpcId, the network
# interfaces and the private DNS name). moto keeps them all.
def _unless_terminated(prop, gone):
    def getter(self):
        if self._state.name == "terminated":
            return gone
        return prop.fget(self)
    return property(getter)


for _attribute, _gone in (("private_ip", None), ("private_ip_address", None), ("private_dns_name", ""),
                          ("network_interfaces", []), ("public_ip", None), ("public_ip_address", None),
                          ("public_dns_name", None), ("subnet_id", None), ("vpc_id", None)):
    _prop = getattr(ec2_instances.Instance, _attribute)
    if isinstance(_prop, property):
        setattr(ec2_instances.Instance, _attribute, _unless_terminated(_prop, _gone))


# ----------------------------------------------------------------------------------- fault injection

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
    """An error entry as {"status", "code", "operation", "message"}, or raises ValueError(reason, allowed)."""
    if isinstance(entry, dict):
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
            settings = self.config.get(service)
            if not settings:
                return None
            for index, entry in enumerate(settings["errors"]):
                if entry["operation"] is None or entry["operation"] == operation:
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


def _error_response(service, status, code, message, start_response):
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
                f"<Message>{_xml_escape(message)}</Message></Error></Errors><RequestID>{request_id}</RequestID>"
                "</Response>").encode()
        content_type = "text/xml"
    elif protocol == "query":
        body = (f'<ErrorResponse><Error><Type>{"Receiver" if status >= 500 else "Sender"}</Type><Code>{code}</Code>'
                f"<Message>{_xml_escape(message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>").encode()
        content_type = "text/xml"
    else:
        # awsJson1_1 (ECS): {"__type": code, "message": ...}.
        body = json.dumps({"__type": code, "message": message}).encode()
        content_type = "application/x-amz-json-1.1"
    start_response(f"{status} Injected", [("Content-Type", content_type), ("Content-Length", str(len(body))),
                                          ("x-amzn-RequestId", request_id)])
    return [body]


def _json_response(start_response, payload, status="200 OK"):
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
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
            method = environ.get("REQUEST_METHOD", "GET")
            if path == "/_ecssd/stats":
                with FAULTS.lock:
                    return _json_response(start_response, copy.deepcopy(FAULTS.stats))
            if path == "/_ecssd/limits" and method == "GET":
                return _json_response(start_response, LIMITS.snapshot())
            length = int(environ.get("CONTENT_LENGTH") or 0)
            try:
                payload = json.loads(environ["wsgi.input"].read(length) or b"{}")
            except ValueError as e:
                return _json_response(start_response, {"error": f"the body is not JSON: {e}"}, "400 Bad Request")
            if path == "/_ecssd/faults":
                try:
                    FAULTS.configure(payload)
                except FaultConfigError as e:
                    return _json_response(start_response, {"error": f"fault configuration refused, nothing changed: {e}",
                                                           "problems": e.problems}, "400 Bad Request")
            elif path == "/_ecssd/limits":
                problems = LIMITS.configure(payload) if isinstance(payload, dict) else ["the body is an object"]
                if problems:
                    return _json_response(start_response, {"error": "limits refused, nothing changed: " + "; ".join(problems),
                                                           "problems": problems}, "400 Bad Request")
                return _json_response(start_response, {"ok": True, "limits": LIMITS.snapshot()})
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
            return _error_response(service, *verdict, start_response)
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
    defaults = Limits.DEFAULTS["route53"]
    parser.add_argument("--max-rrsets-per-zone", type=int, default=defaults["max_rrsets_per_zone"],
                        help="Route53 records per hosted zone (AWS's default quota: 10,000)")
    parser.add_argument("--change-processing-ms", type=int, default=defaults["change_processing_ms"],
                        help="how long Route53 processes an accepted change; a zone's next change within it "
                             "gets PriorRequestNotComplete")
    args = parser.parse_args()
    problems = LIMITS.configure({"route53": {"max_rrsets_per_zone": args.max_rrsets_per_zone,
                                             "change_processing_ms": args.change_processing_ms}})
    if problems:
        parser.error("; ".join(problems))
    # Load the models now: the first faulted request should not wait for it.
    for service in ("route53", "ecs", "ec2"):
        MODELS.get(service)
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
