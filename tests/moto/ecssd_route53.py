"""Route53 as AWS documents it, patched into moto at import: ChangeResourceRecordSets (atomic batches,
Route53's conflict messages, quotas, per-zone PriorRequestNotComplete, the zone's own SOA and NS records),
ListResourceRecordSets (Route53's sort order, StartRecordIdentifier / NextRecordIdentifier paging) and
the SOA CreateHostedZone gives a zone, with Route53's rest-xml error responses. Each rule cites its AWS
page; the index is ecssd_moto.py's docstring."""

import copy
import ipaddress
import os
import threading
import time

from moto.core.utils import utcnow
from moto.route53 import models as r53_models
from moto.route53 import responses as r53_responses
from moto.route53.exceptions import InvalidInput
from moto.route53.models import RecordSet, reverse_domain_name

from ecssd_limits import LIMITS


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
# An A record's value is an IPv4 address, an AAAA record's an IPv6 address (Developer Guide, "Supported
# DNS record types": A "in IPv4 format", AAAA "in colon-separated hexadecimal format"). The guide is
# silent on the error; these are real responses: gomodules/dns issue 7 and
# ministryofjustice/cloud-platform-environments PR 7302 (A), sjmayotte/route53-dynamic-dns issue 45
# (AAAA, an IPv4 address given).
A_VALUE_NOT_IPV4 = ("Invalid Resource Record: FATAL problem: ARRDATAIllegalIPv4Address (Value is not a valid IPv4 "
                    "address) encountered with '{value}'")
AAAA_VALUE_NOT_IPV6 = ("Invalid Resource Record: FATAL problem: AAAARRDATAIllegalIPv6Address (Value is not a valid "
                       "IPv6 address) encountered with '{value}'")
# airbnb/zonify issue 16 (a real response for weighted records; no report of the multivalue wording
# was found, so the same text serves every non-simple routing policy).
TOO_MANY_SAME_NAME_AND_TYPE = "Exceeded limit on number of {policy} RRSets for {name}, type {rtype} in this zone."
# rancher issue 10253 quotes "Cannot have more than 100 records in a RRSet." from when the quota was 100.
TOO_MANY_VALUES = f"Cannot have more than {MAX_VALUES_PER_RECORD} records in a RRSet."
# The zone's own records (Developer Guide, "Deleting records": "You can't delete the records that have a
# value of NS or SOA for Type"). terraform-provider-aws issue 37863, DNSControl PR 4402 (deleting the
# SOA) and kubernetes-sigs/boskos PR 159 (both messages in one Message) quote real responses. Docs and
# reports are silent on a second SOA value; the bed answers it with the same message (in Route53's
# words each value is a record: "Cannot have more than 400 records in a RRSet").
ZONE_NEEDS_ONE_SOA = "A HostedZone must contain exactly one SOA record."
# airbnb/zonify issue 1, kubernetes-sigs/boskos PR 159 (real responses).
ZONE_NEEDS_APEX_NS = "A HostedZone must contain at least one NS record for the zone itself."
# The bed's own wording, not Route53's: no report of a real response to either was found.
SOA_NOT_AT_APEX = "RRSet of type SOA with DNS name {name} is not permitted: the only SOA of zone {zone} is at its apex"
SOA_MALFORMED = ("SOA value '{value}' is not <primary name> <mailbox name> <serial> <refresh> <retry> <expire> "
                 "<minimum>, each number 0 to 4294967295")
# RFC 1035 section 3.3.13: SERIAL is an unsigned 32-bit number, REFRESH, RETRY, EXPIRE and MINIMUM 32-bit
# time intervals; the bed takes each as unsigned (docs silent on the range Route53 accepts).
SOA_NUMBER_MAX = 2**32 - 1


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


def xml_escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def route53_error_body(status, code, message):
    kind = "Receiver" if status >= 500 else "Sender"
    return (f'<?xml version="1.0"?>\n<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
            f"<Error><Type>{kind}</Type><Code>{code}</Code><Message>{xml_escape(message)}</Message></Error>"
            f"<RequestId>ecssd-{os.urandom(8).hex()}</RequestId></ErrorResponse>")


def _norm_name(name):
    name = name.lower()
    return name if name.endswith(".") else name + "."


def _record_key(rrset):
    return (_norm_name(rrset.name), rrset.type, rrset.set_identifier or "")


def _listing_name(name):
    # API ref, ListResourceRecordSets, "Sort order": by DNS name with the labels reversed, "for example:
    # com.example.www. Note the trailing dot, which can change the sort order when the record name
    # contains characters that appear before . (decimal 46)" ("a-b" before "a"), then by record type.
    return reverse_domain_name(name) + "."


def _sort_key(rrset):
    name, rtype, set_id = _record_key(rrset)
    return (_listing_name(name), rtype, set_id)


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


def _is_domain_name(text):
    # RFC 1035 section 2.3.4: labels of 1 to 63 octets, a name of at most 255; "." is the root.
    labels = (text[:-1] if text.endswith(".") else text).split(".")
    return text == "." or len(text) <= 255 and all(1 <= len(label) <= 63 for label in labels)


def is_ipv4_value(value):
    """A dotted-quad IPv4 address (four decimal numbers 0 to 255; a leading zero, which some parsers read
    as octal, is refused: the docs are silent, the stricter reading)."""
    try:
        return str(ipaddress.IPv4Address(value)) == value
    except ValueError:
        return False


def is_ipv6_value(value):
    """An IPv6 address in any of RFC 4291's text forms (full, compressed, upper or lower case, an IPv4
    tail), which Route53 keeps as written (the docs' own example keeps leading zeros). A zone index
    ("fe80::1%eth0") names an interface of one host, not an address DNS can publish: refused."""
    if "%" in value:
        return False
    try:
        ipaddress.IPv6Address(value)
        return True
    except ValueError:
        return False


def is_soa_value(value):
    """One SOA value as Route53 shows it, "ns-2048.awsdns-64.net. hostmaster.example.com. 1 7200 900 1209600
    86400": two names and five numbers (Developer Guide, "NS and SOA records that Amazon Route 53 creates
    for a public hosted zone"; RFC 1035 section 3.3.13)."""
    fields = value.split(" ")
    return (len(fields) == 7
            and all(_is_domain_name(f) for f in fields[:2])
            and all(f.isascii() and f.isdigit() and int(f) <= SOA_NUMBER_MAX for f in fields[2:]))


# moto serves requests on many threads but its zones are plain lists; Route53 applies each batch
# atomically, so batches (and listings) are serialised here, or concurrent batches lose updates.
_ZONE_LOCK = threading.RLock()
# Per zone: when (time.monotonic()) Route53 accepted the zone's last change; it is still processing it
# for change_processing_ms after that (the setting read at each request, so a change applies at once).
_ZONE_ACCEPTED_AT = {}
# Bumped by every change to any zone's records and by every zone created or deleted (under _ZONE_LOCK):
# the bed's DNS authority reads the zone again only when it moved (GET /_ecssd/route53-version), as
# Route53's name servers learn of a change from Route53, not by listing the zone through the API.
_VERSION = [0]


def version():
    """How many times Route53's zones have changed since the server started."""
    with _ZONE_LOCK:
        return _VERSION[0]


def _changed():
    with _ZONE_LOCK:
        _VERSION[0] += 1


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
    apex = zone_name + "."
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
            # Developer Guide, "Deleting records": "You can't delete the records that have a value of NS or
            # SOA for Type" (the zone's own, at its apex; NS records below it delegate and may go). Also
            # not in a batch that re-creates them: the docs forbid the delete, the stricter reading.
            elif name == apex and key[1] == "SOA":
                errors.append(ZONE_NEEDS_ONE_SOA)
            elif name == apex and key[1] == "NS":
                errors.append(ZONE_NEEDS_APEX_NS)
            else:
                working.remove(current)
            continue
        if action not in ("CREATE", "UPSERT"):
            errors.append(f"Invalid action {action}")
            continue
        # API ref, ChangeResourceRecordSets, CREATE: "returns an error if the record already exists".
        # So is a CREATE of the zone's SOA, which always exists (the DELETE rule above keeps it).
        if action == "CREATE" and current is not None:
            errors.append(f"Tried to create resource record set {label} but it already exists")
            continue
        values = [v["Value"] for v in wanted.get("ResourceRecords") or []]
        # The SOA: Route53 creates one per zone, at its apex, and it is changed only by UPSERT (Developer
        # Guide, "NS and SOA records that Amazon Route 53 creates for a public hosted zone": its TTL and
        # minimum are changed in the console or with ChangeResourceRecordSets). An SOA
        # belongs only at the apex (RFC 1035 section 5.2, RFC 2181 section 6.1): the docs are silent on
        # the error for one elsewhere, so the bed refuses it with InvalidChangeBatch, the stricter choice.
        # Its one value has the seven fields the page lists.
        if key[1] == "SOA":
            if name != apex:
                errors.append(SOA_NOT_AT_APEX.format(name=name, zone=zone.name))
                continue
            if len(values) != 1:
                errors.append(ZONE_NEEDS_ONE_SOA)
                continue
            if not is_soa_value(values[0]):
                errors.append(SOA_MALFORMED.format(value=values[0]))
                continue
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
        # Developer Guide, "Supported DNS record types", A and AAAA: each value is an address of the
        # record's family.
        if wanted["Type"] == "A" and not all(is_ipv4_value(v) for v in values):
            errors.append(A_VALUE_NOT_IPV4.format(value=next(v for v in values if not is_ipv4_value(v))))
            continue
        if wanted["Type"] == "AAAA" and not all(is_ipv6_value(v) for v in values):
            errors.append(AAAA_VALUE_NOT_IPV6.format(value=next(v for v in values if not is_ipv6_value(v))))
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
    _changed()


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
        start = (_listing_name(_norm_name(start_name)), start_type or "", start_id or "")
        ordered = [r for r in ordered if _sort_key(r) >= start]
    page, rest = ordered[:max_items], ordered[max_items:]
    result = {"ResourceRecordSets": page, "IsTruncated": bool(rest), "MaxItems": max_items}
    if rest:
        result["NextRecordName"] = rest[0].name
        result["NextRecordType"] = rest[0].type
        if rest[0].set_identifier:
            result["NextRecordIdentifier"] = rest[0].set_identifier
    return r53_responses.ActionResult(result)


_moto_create_hosted_zone = r53_models.Route53Backend.create_hosted_zone


def create_hosted_zone(self, *args, **kwargs):
    # moto keeps the new zone's SOA value as {"Value": "..."} and lists that dict's Python repr as the
    # value ("{'Value': 'ns-2048...'}"); Route53 lists the value itself (Developer Guide, "NS and SOA
    # records that Amazon Route 53 creates for a public hosted zone": "ns-2048.awsdns-64.net.
    # hostmaster.example.com. 1 7200 900 1209600 86400", record TTL 900).
    zone = _moto_create_hosted_zone(self, *args, **kwargs)
    for rrset in zone.rrsets:
        rrset.records = [r["Value"] if isinstance(r, dict) else r for r in rrset.records or []]
    _changed()
    return zone


_moto_delete_hosted_zone = r53_models.Route53Backend.delete_hosted_zone


def delete_hosted_zone(self, id_):
    deleted = _moto_delete_hosted_zone(self, id_)
    _changed()
    return deleted


r53_models.Route53Backend.create_hosted_zone = create_hosted_zone
r53_models.Route53Backend.delete_hosted_zone = delete_hosted_zone
r53_models.Route53Backend.change_resource_record_sets = change_resource_record_sets
r53_responses.Route53.change_resource_record_sets = change_resource_record_sets_response
r53_responses.Route53.list_resource_record_sets = list_resource_record_sets_response
