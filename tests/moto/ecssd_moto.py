"""moto as ecssd's AWS, corrected where moto differs from AWS's documented contract in ways ecssd relies on.

Run: python ecssd_moto.py [--port 0] [--max-rrsets-per-zone 10000] [--change-processing-ms 100]. Prints
"ECSSD_MOTO_READY http://127.0.0.1:<port>" once serving, and exits when its standard input closes, so a
test that dies never leaves a server behind. With --fork-server SOCKET it imports all this once and
then starts one such server per connection to SOCKET, forked (see "fork server" below): a test suite's
servers start in milliseconds instead of a CPU-second each.

Every rule names the AWS page it follows; where AWS's documentation is silent the rule says so and picks
the stricter behaviour. Each is proven by tests/tests/e2e/emulator_fidelity.rs through the real Rust SDK.

This file is the launcher (options, the /_ecssd/ controls, the server); importing the modules beside it
applies their corrections to moto before the server starts. The index below names the module of each:
  ecssd_route53.py  Route53 rules          ecssd_ecs.py     ECS rules
  ecssd_ec2.py      EC2 rules              ecssd_faults.py  fault injection, stats, service models
  ecssd_limits.py   the bed's per-account/zone settings (/_ecssd/limits)
  ecssd_sqs.py      SQS at AWS's speed: moto's own answers, without its per-message cost

  Route53, in ecssd_route53.py (API reference: ChangeResourceRecordSets, ListResourceRecordSets,
  ResourceRecord; Developer Guide: "Quotas", "Supported DNS record types", "Deleting records", "NS and
  SOA records that Amazon Route 53 creates for a public hosted zone")
  - ListResourceRecordSets honours StartRecordIdentifier and returns NextRecordIdentifier (moto ignores
    both and loops forever inside one name's multivalue records). [API ref, ListResourceRecordSets]
  - ListResourceRecordSets sorts by name with the labels reversed and a trailing dot ("a-b" before "a",
    where moto puts "a" first), then by type; StartRecordName=<apex>, StartRecordType=SOA, MaxItems=1
    is the zone's SOA. [API ref, ListResourceRecordSets, "Sort order"]
  - A new zone's SOA lists its value, "ns-2048.awsdns-64.com. hostmaster.example.com. 1 7200 900 1209600
    86400", TTL 900 (moto lists the Python repr of a dict, "{'Value': '...'}"). [Developer Guide, "NS and
    SOA records ..."]
  - The zone's own records: DELETE of the apex SOA or NS is refused, "A HostedZone must contain exactly
    one SOA record." / "A HostedZone must contain at least one NS record for the zone itself." (real
    responses: terraform-provider-aws issue 37863, airbnb/zonify issue 1, kubernetes-sigs/boskos PR
    159), also in a batch that re-creates them (moto answers InvalidInput, as for a record no change
    created); a CREATE of the SOA is "... but it already exists" (moto adds a second SOA).
    An SOA anywhere but the apex is refused (RFC 1035 section 5.2; docs silent, the bed's wording); an
    UPSERT of the SOA takes exactly one value (a second: the "exactly one SOA record" message) of two
    names and five numbers 0 to 2^32-1 (else the bed's wording, "SOA value '...' is not <primary name>
    ..."); moto takes each of these. [Developer Guide, "Deleting records": "You can't delete the records
    that have a value of NS or SOA for Type"; "NS and SOA records ...": TTL and minimum change with
    ChangeResourceRecordSets]
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
  - Limits, each InvalidChangeBatch with Route53's message (see the constants in ecssd_route53.py for
    the wording): 100 records with the same name and type and a non-simple routing policy (a
    SetIdentifier); 400 values (ResourceRecord elements) per record; a TXT/SPF character-string of at
    most 255 characters; 1,000 ResourceRecord elements and 32,000 characters of Value per request,
    UPSERT counting twice; 10,000 records per hosted zone (MAX_RRSETS_BY_ZONE, a harness setting in
    ecssd_limits.py). [Developer Guide, Quotas; "Supported DNS record types", TXT]
  - A CREATE or UPSERT of an A record whose value is not a dotted-quad IPv4 address, or of an AAAA record
    whose value is not an IPv6 address (any RFC 4291 text form, kept as written; no zone index), is
    InvalidChangeBatch "Invalid Resource Record: FATAL problem: ARRDATAIllegalIPv4Address (Value is not a
    valid IPv4 address) encountered with '...'" / "... AAAARRDATAIllegalIPv6Address (Value is not a valid
    IPv6 address) ..." (the guide is silent on the error; real responses quoted in public issues); moto
    takes any text. [Developer Guide, "Supported DNS record types", A and AAAA]
  ECS, in ecssd_ecs.py (API reference: ListTasks, ListContainerInstances, DescribeTasks,
  DescribeContainerInstances, StartTask)
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
  - StartTask takes networkConfiguration (moto drops it, refusing every awsvpc task it starts); an
    awsvpc task's addresses come from its subnet: IPv4 only, IPv4 and IPv6 in a subnet with an IPv6
    block (dual-stack), IPv6 alone in an IPv6-native subnet, named by its containers'
    networkInterfaces[] (attachmentId, privateIpv4Address, ipv6Address; moto gives none and always an
    IPv4 address); an IPv6-only task's ENI attachment has no privateIPv4Address. The IPv6 address is
    the lowest of the subnet's block no other interface holds (undocumented: the bed's choice, so a
    test can pick ::1/128 to serve a task on IPv6 loopback). [API ref, StartTask, Container,
    NetworkInterface, Attachment; Developer Guide, "Amazon ECS task networking options for Fargate" and
    "... for EC2"]
  EC2, in ecssd_ec2.py (User Guide, "Instance lifecycle"; API reference: DescribeInstances, Instance,
  Subnet)
  - (not a correction) the sweeper's tests launch container-instance hosts in a VPC and subnet of
    127.0.0.0/16 with a chosen PrivateIpAddress (RunInstances), which moto accepts as it is, so that
    ECS/EC2 describe endpoints on loopback; AWS would refuse such a VPC (VPC User Guide, "VPC CIDR
    blocks": RFC 1918 or publicly routable ranges). It is the bed's one concession to keep tests on
    loopback (tests/src/ecs.rs, Fleet::loopback_host).
  - a terminated instance is described without private or public IP address (the lifecycle table: "None"
    on Terminate), and, where the docs are silent on timing, at once without its private DNS name,
    network interfaces, subnet and VPC: the stricter choice (moto keeps them all). Terminate it with
    EC2 TerminateInstances.
  - an IPv6-only subnet's AvailableIpAddressCount is 0: it counts "unused private IPv4 addresses"
    (moto counts the IPv6 block, 2^64 - 5 for a /64, which the SDK cannot read). [API ref, Subnet]
  Harness controls (not AWS APIs, under /_ecssd/, served by this file):
  - POST /_ecssd/faults {"route53": {"rate_per_second": 5, "burst": 5, "errors": [[500, "InternalError"],
    [400, "PriorRequestNotComplete", "ChangeResourceRecordSets"]]}} throttles a service like AWS's
    request limits (HTTP 400 Throttling "Rate exceeded") and queues errors (ecssd_faults.py). Codes are
    checked against the service model botocore ships (the one the Rust SDK is generated from): [status,
    code] only for AWS's generic errors (throttling: 400/429 with a code in aws-runtime's
    THROTTLING_ERRORS; 5xx: 500-504 with InternalError, InternalFailure or ServiceUnavailable), failing
    the service's next request;
    [status, code, operation] only for an error the model lists for that operation, at the model's
    status, failing that operation's next request. Anything else is refused with HTTP 400 and a JSON
    body naming the entry and the allowed codes, and nothing is configured. An entry may also be an
    object {"status", "code", "operation"?, "message"?, "repeat"?}; with "repeat": true it is not used
    up but fails every request it matches until the service's faults are configured again (a service
    answering 5xx for a whole sweep; an entry after it that it matches never fires).
  - POST /_ecssd/limits {"route53": {"max_rrsets_per_zone": 10000, "change_processing_ms": 100}};
    GET /_ecssd/limits shows them (ecssd_limits.py).
  - GET /_ecssd/stats: requests per service and operation, and how many were throttled or failed
    (ecssd_faults.py);
  - GET /_ecssd/route53-version {"version": n}: n grows with every change to any zone's records and
    every zone created or deleted, so the bed's DNS authority re-reads a zone only when it changed
    (Route53's name servers are told of changes; they do not list the zone through the API);
  - requests signed with the access key ECSSDOBSERVER bypass faults and stats (a test's observer);
  - POST /_ecssd/agent {"cluster": ..., "containerInstance": ..., "connected": false}: an ECS agent
    disconnecting, which has no AWS API.
  - POST /_ecssd/stack-deleting {"stackId": ...}: a stack held in DELETE_IN_PROGRESS, as CloudFormation
    reports it while it deletes the stack's resources and sends its custom resources their Delete
    requests (User Guide, "Stack status codes": DELETE_IN_PROGRESS, "Ongoing removal of one or more
    stacks"; "Custom resources": "When you delete the stack, CloudFormation sends a delete request").
    moto deletes a stack at once (DELETE_COMPLETE), so a custom resource could never see its stack
    being deleted; this holds it there. Its describe is then DescribeStacks' as AWS answers it.
"""

import argparse
import copy
import json
import logging
import os
import random
import select
import signal
import socket
import sys
import threading

# Run as a script, Python puts this file's folder first on sys.path, so the modules beside it import
# from any working directory; put it there too when that is turned off (python -P, PYTHONSAFEPATH).
_HERE = os.path.dirname(os.path.realpath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from moto.cloudformation import models as cloudformation_models  # noqa: E402
from moto.ecs import models as ecs_models  # noqa: E402
from moto.moto_api._internal import mock_random  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication, MotoRequestHandler, create_backend_app)
from werkzeug.serving import BaseWSGIServer, make_server  # noqa: E402

# Imported for their effect too: each applies its corrections to moto now, before the server starts.
from ecssd_limits import LIMITS, Limits  # noqa: E402
import ecssd_route53  # noqa: E402,F401 - Route53 corrections
import ecssd_ecs  # noqa: E402,F401 - ECS corrections
import ecssd_ec2  # noqa: E402,F401 - EC2 corrections
import ecssd_sqs  # noqa: E402,F401 - SQS speed
from ecssd_faults import (  # noqa: E402
    FAULTS, MODELS, OBSERVER_ACCESS_KEY, FaultConfigError, error_response, service_and_operation)


# --------------------------------------------------------------------------- harness HTTP controls

def _json_response(start_response, payload, status="200 OK"):
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _set_agent(payload):
    backend = ecs_models.ecs_backends[payload.get("account", "123456789012")][payload.get("region", "us-east-1")]
    cluster = backend._get_cluster(payload["cluster"])
    instance_id = payload["containerInstance"].split("/")[-1]
    backend.container_instances[cluster.name][instance_id].agent_connected = bool(payload["connected"])


def _hold_stack_deleting(payload):
    backend = cloudformation_models.cloudformation_backends[payload.get("account", "123456789012")][
        payload.get("region", "us-east-1")]
    backend.get_stack(payload["stackId"]).status = "DELETE_IN_PROGRESS"


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
            if path == "/_ecssd/route53-version":
                return _json_response(start_response, {"version": ecssd_route53.version()})
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
            elif path == "/_ecssd/stack-deleting":
                _hold_stack_deleting(payload)
            else:
                start_response("404 Not Found", [("Content-Length", "0")])
                return [b""]
            return _json_response(start_response, {"ok": True})
        service, operation = service_and_operation(environ)
        if f"Credential={OBSERVER_ACCESS_KEY}/" in environ.get("HTTP_AUTHORIZATION", ""):
            return app(environ, start_response)
        verdict = FAULTS.admit(service, operation)
        if verdict is not None:
            return error_response(service, *verdict, start_response)
        return app(environ, start_response)

    return wrapped


def _exit_when_closed(read):
    """Exits this process once `read` (a blocking read of up to n bytes) finds the end of its stream."""
    try:
        while read(4096):
            pass
    finally:
        os._exit(0)


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], exit_on_error=False)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--keep-stdin", action="store_true", help="do not exit when stdin closes")
    parser.add_argument("--fork-server", metavar="SOCKET",
                        help="import moto once, then serve a fresh server per connection to this Unix socket")
    defaults = Limits.DEFAULTS["route53"]
    parser.add_argument("--max-rrsets-per-zone", type=int, default=defaults["max_rrsets_per_zone"],
                        help="Route53 records per hosted zone (AWS's default quota: 10,000)")
    parser.add_argument("--change-processing-ms", type=int, default=defaults["change_processing_ms"],
                        help="how long Route53 processes an accepted change; a zone's next change within it "
                             "gets PriorRequestNotComplete")
    return parser


def _server(args):
    """The configured server, bound to its port but not yet serving; ValueError names a bad option."""
    problems = LIMITS.configure({"route53": {"max_rrsets_per_zone": args.max_rrsets_per_zone,
                                             "change_processing_ms": args.change_processing_ms}})
    if problems:
        raise ValueError("; ".join(problems))
    # A listen backlog of the kernel's usual most (net.core.somaxconn), not werkzeug's 128: a fleet of
    # a thousand sidecars connects at once, and an AWS endpoint does not drop their SYNs.
    BaseWSGIServer.request_queue_size = 4096
    app = with_harness_controls(DomainDispatcherApplication(create_backend_app))
    # No request log: nothing reads it (the launcher discards stderr), and formatting a line per request
    # took 9% of moto's time under the fleet benchmark's 1,000 sidecars (py-spy).
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    os.environ["MOTO_PORT"] = str(server.server_port)
    return server


def _ready_line(args, server):
    return f"ECSSD_MOTO_READY http://{args.host}:{server.server_port}\n"


def _load_models():
    # Load the models now: the first faulted request should not wait for it.
    for service in ("route53", "ecs", "ec2"):
        MODELS.get(service)


# --------------------------------------------------------------------------- fork server
# Importing moto and its service models costs about a CPU-second, which a test suite starting a server
# per test pays well over a hundred times. The fork server pays it once: each connection to its socket
# gets a child forked from the loaded interpreter, a server exactly as `main` would start it (its options
# one JSON array of arguments on the first line, its state empty: no backend exists before a request),
# whose ready line comes back on the connection and which exits when the connection closes.

def _serve_forked(conn):
    """In the forked child: never returns."""
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # as the direct launch: no console, no request log
            os.dup2(devnull, fd)
        # The parent's random state is every child's: reseeded, two servers do not make the same ids.
        mock_random.seed()
        random.seed()
        reader = conn.makefile("rb")
        try:
            argv = json.loads(reader.readline())
            if not isinstance(argv, list) or not all(isinstance(arg, str) for arg in argv):
                raise ValueError(f"expected a JSON array of strings (the options), got {argv!r}")
            args, unknown = _parser().parse_known_args(argv)
            if unknown:
                raise ValueError(f"unrecognized arguments: {' '.join(unknown)}")
            if args.fork_server:
                raise ValueError("--fork-server is not an option of a forked server")
            server = _server(args)
        except (ValueError, argparse.ArgumentError) as e:
            conn.sendall(f"ECSSD_MOTO_ERROR {e}\n".encode())
            return
        conn.sendall(_ready_line(args, server).encode())
        threading.Thread(target=_exit_when_closed, args=(reader.read1,), daemon=True).start()
        server.serve_forever()
    finally:
        os._exit(1)


def serve_forks(socket_path, keep_stdin):
    """Serves forks until standard input closes (the process that started it is gone), or for ever with
    `keep_stdin`."""
    _load_models()
    if os.path.exists(socket_path):
        os.unlink(socket_path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    print(f"ECSSD_MOTO_FORKS_READY {socket_path}", flush=True)
    # One thread only, so that a fork copies no lock another thread holds.
    watched = [listener] if keep_stdin else [listener, sys.stdin]
    while True:
        readable, _, _ = select.select(watched, [], [])
        if sys.stdin in readable and not os.read(sys.stdin.fileno(), 4096):
            os.unlink(socket_path)
            return
        if listener in readable:
            conn, _ = listener.accept()
            if os.fork() == 0:
                listener.close()
                _serve_forked(conn)
            conn.close()


def main():
    parser = _parser()
    try:
        args = parser.parse_args()
    except argparse.ArgumentError as e:
        parser.error(str(e))
    if args.fork_server:
        serve_forks(args.fork_server, args.keep_stdin)
        return
    try:
        server = _server(args)
    except ValueError as e:
        parser.error(str(e))
    _load_models()
    if not args.keep_stdin:
        # Ctrl-C reaches the whole process group; moto must outlive the sidecars' withdrawal, and it
        # exits anyway once its parent is gone and stdin closes.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        threading.Thread(target=_exit_when_closed, args=(sys.stdin.buffer.read1,), daemon=True).start()
    print(_ready_line(args, server), end="", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
