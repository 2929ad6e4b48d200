"""The bed's settings that AWS sets per account or hosted zone (Route53's records per zone, how long a
change is "still processing"): their defaults, checks and current values, shared by the rules that read
them at each request. Changed with POST /_ecssd/limits and the launcher's options (ecssd_moto.py)."""

import copy
import threading


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
            # The account's request rate, every Route53 API and every client together: a token bucket
            # refilled at this many requests per second, holding at most `account_burst`; a request
            # finding it empty is refused with HTTP 400 `Throttling` and takes no token. Developer
            # Guide, "Throttling for Amazon Route 53 API requests": 10/s with a burst of 50 for every
            # account since 2026-07-30; 5/s before (the old Quotas page). 0 (the default here) leaves
            # tests that are not about the account's rate unthrottled.
            "account_requests_per_second": 0,
            "account_burst": 0,
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
