"""EC2 as AWS documents it, patched into moto at import: a terminated instance is described without its
addresses, network interfaces, subnet and VPC; an IPv6-only subnet has no IPv4 addresses to count. The
rules cite their AWS pages; the index is ecssd_moto.py's docstring."""

from moto.ec2.models import instances as ec2_instances
from moto.ec2.models import subnets as ec2_subnets


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


# API reference, "Subnet": AvailableIpAddressCount is "The number of unused private IPv4 addresses in the
# subnet", so an IPv6-only (IPv6-native) subnet has none. moto counts its IPv6 block instead (2^64 - 5
# for a /64, which no SDK can read as the model's Integer).
_moto_available_ip_address_count = ec2_subnets.Subnet.available_ip_address_count


def _available_ipv4_address_count(self):
    if self.ipv6_native:
        return 0
    return _moto_available_ip_address_count.fget(self)


ec2_subnets.Subnet.available_ip_address_count = property(_available_ipv4_address_count)
