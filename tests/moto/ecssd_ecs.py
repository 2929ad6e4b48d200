"""ECS as AWS documents it, patched into moto at import: tasks that stay RUNNING with startedAt and
networkBindings, dynamic host ports, awsvpc tasks' addresses by their subnet (IPv4, dual-stack,
IPv6-only) in the containers' networkInterfaces, ListTasks / ListContainerInstances paging,
DescribeTasks per cluster with MISSING failures, and the 100-identifier limits. Each rule cites its AWS page; the index
is ecssd_moto.py's docstring."""

import base64
import ipaddress
import json
import threading

from moto.core.utils import utcnow
from moto.ec2 import ec2_backends
from moto.ecs import models as ecs_models
from moto.ecs import responses as ecs_responses
from moto.moto_api import state_manager


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


# API reference, StartTask: networkConfiguration, "The VPC subnet and security group configuration for
# tasks that receive their own elastic network interface by using the awsvpc networking mode". moto's
# StartTask drops it (and so refuses every awsvpc task it starts); the request's is handed to the tasks
# it creates.
_starting = threading.local()


def _task_init(self, cluster, task_definition, container_instance_arn, *args, **kwargs):
    if not kwargs.get("networking_configuration"):
        kwargs["networking_configuration"] = getattr(_starting, "network_configuration", None)
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
    if mode == "awsvpc":
        _address_by_subnet(self)


def _address_by_subnet(task):
    """An awsvpc task's addresses come from its subnet, and its containers' networkInterfaces name them.

    ECS Developer Guide, "Amazon ECS task networking options for Fargate": "Tasks launched in dual-stack
    subnets receive an IPv4 address and an IPv6 address. Tasks launched in IPv6-only subnets receive
    only an IPv6 address" (on EC2, "Using a VPC in IPv6-only mode" likewise). API reference,
    "NetworkInterface" (Container.networkInterfaces): attachmentId, privateIpv4Address, ipv6Address,
    "The private IPv6 address for the network interface". moto gives every awsvpc task an IPv4 address
    and no networkInterfaces. The attachment's details document no IPv6 name (API reference,
    "Attachment": "the network interface ID, the MAC address, the subnet ID, and the private IPv4
    address"), so the bed adds none; an IPv6-only task's attachment has no privateIPv4Address.
    Which address of the subnet's IPv6 block a task gets is undocumented: the bed gives the lowest one
    no other network interface of the subnet holds, so a test can choose it by the block (`::1/128`
    for a task served on IPv6 loopback)."""
    attachment = task.attachments[0]
    details = {d["name"]: d["value"] for d in attachment["details"]}
    backend = ec2_backends[task._account_id][task.region_name]
    eni = backend.get_network_interface(details["networkInterfaceId"])
    subnet = eni.subnet
    blocks = [a["ipv6CidrBlock"] for a in subnet.ipv6_cidr_block_associations.values()
              if a["ipv6CidrBlockState"]["State"] == "associated"]
    interface = {"attachmentId": attachment["id"]}
    if subnet.ipv6_native:
        attachment["details"] = [d for d in attachment["details"] if d["name"] != "privateIPv4Address"]
        eni.private_ip_address = None
    else:
        interface["privateIpv4Address"] = details["privateIPv4Address"]
    if blocks:
        held = {ip for other in backend.enis.values() if other.subnet is subnet for ip in other.ipv6_addresses}
        free = next((str(ip) for ip in ipaddress.IPv6Network(blocks[0]).hosts() if str(ip) not in held), None)
        if free is None:
            raise ecs_models.InvalidParameterException(f"The subnet {subnet.id} has no free IPv6 address.")
        eni.ipv6_addresses.append(free)
        interface["ipv6Address"] = free
    for container in task.containers:
        container.network_interfaces = [dict(interface)]


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


_original_start_task = ecs_responses.EC2ContainerServiceResponse.start_task


def start_task_response(self):
    _starting.network_configuration = self._get_param("networkConfiguration")
    try:
        return _original_start_task(self)
    finally:
        _starting.network_configuration = None


ecs_responses.EC2ContainerServiceResponse.describe_tasks = describe_tasks_response
ecs_responses.EC2ContainerServiceResponse.start_task = start_task_response
ecs_responses.EC2ContainerServiceResponse.list_tasks = list_tasks_response
ecs_responses.EC2ContainerServiceResponse.list_container_instances = list_container_instances_response
ecs_responses.EC2ContainerServiceResponse.describe_container_instances = describe_container_instances_response
