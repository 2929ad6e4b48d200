"""Renders template.yaml into the CloudFormation template AWS SAM deploys (the SAM transform, run
offline with the SAM CLI's own translator), as JSON on stdout.

Run: .tools/sam/bin/python tests/sam/render.py template.yaml [Name=Value ...]
"""

import json
import os
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class OfflineManagedPolicies:
    """SAM asks IAM for managed policy ARNs only when a template names one in `Policies`; this
    template names none, so nothing is ever looked up."""

    def load(self):
        return {}


def main():
    path, overrides = sys.argv[1], sys.argv[2:]
    # Pseudo parameters (AWS::Region) resolve from the environment; no AWS call is made.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with open(path, encoding="utf-8") as handle:
        template = yaml_parse(handle.read())
    # What `sam package` does before deploying: local code becomes an S3 object. The object is named
    # after the code directory, so functions built from the same code (the sweeper and the
    # withdrawer: one `sam build` of lambda/) render with the same Code.
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            code = resource["Properties"]["CodeUri"].strip("/")
            resource["Properties"]["CodeUri"] = f"s3://ecssd-render/{code}.zip"
    parameters = {name: spec["Default"] for name, spec in template.get("Parameters", {}).items() if "Default" in spec}
    parameters.update(override.split("=", 1) for override in overrides)
    rendered = transform(template, parameters, OfflineManagedPolicies())
    json.dump(rendered, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
