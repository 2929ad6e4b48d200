"""EC2 as AWS documents it, patched into moto at import: a terminated instance is described without its
addresses, network interfaces, subnet and VPC. The rule cites its AWS page; the index is
ecssd_moto.py's docstring."""

from moto.ec2.models import instances as ec2_instances


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
