#!/usr/bin/env python3
"""Checks template.yaml offline: cfn-lint, the SAM transform, the invariants the
design relies on, and the deploy paths of samconfig.toml.

Usage (from the repository root, with the project venv):

    .venv/bin/python infra/scripts/check_template.py [template.yaml] [--samconfig samconfig.toml]

1. cfn-lint (errors and warnings fail; see LINT_IGNORES for the exceptions).
2. The SAM transform (aws-sam-translator), offline: no AWS credentials, no call.
3. Invariants on the transformed CloudFormation:
   - queues: every work queue has a RedrivePolicy to a DLQ, SSE, exactly one
     consumer and an alarm on the age of its oldest message; every dead-letter
     queue (redrive targets and async failure destinations) keeps messages 14
     days and alarms at one visible message;
   - the scheduled fan-out's async invocations have an SQS failure destination;
   - VisibilityTimeout >= 6 x the consumer's Timeout + its batching window;
   - every SQS event source mapping reports partial batch failures;
   - alarms: Errors and Throttles of every function; every alarm notifies the
     alarm topic (AlarmTopicArn, else the topic the stack creates);
   - the dashboard graphs only metrics shared/src emits, with its dimensions;
   - the table's keys, GSIs and TTL equal shared/src/adapters/dynamo/ (mod.rs, table.rs);
   - IAM: no Resource "*" (unless the action cannot be scoped), no wildcard
     actions, no Scan, no AWS managed policies on function roles, and the
     per-function grants the design names (secrets, signing key, queues);
   - routes: the OAuth callback and the settings page's static routes are public
     (GET only), every other route has the JWT authorizer and names its method (no ANY: a preflight must not reach the
     authorizer), and CORS allows ModjoWebOrigin;
   - names two stacks could share contain the stack name; the outputs name what
     MODJO_AWS=real needs and the exact callback URL the functions use;
   - functions: rust-cargolambda builds of the workspace's function crates,
     environment variable names known to shared/src/config.rs, and never the
     test-only SALESFORCE_EXTRA_ALLOWED_ORIGINS;
   - the files the template names exist.
4. Deploy paths (infra/scripts/deploy.py): for each environment of
   samconfig.toml and each architecture, the plan refuses to deploy without the
   parameters no default can provide, and with them renders `sam build` and
   `sam deploy` with the same parameters: both resolve every function to the
   chosen architecture, every samconfig parameter survives, and the rendered
   template passes the transform and the invariants.

Exits 0 when everything holds, 1 with one line per failure otherwise.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
import deploy  # noqa: E402  (infra/scripts/deploy.py: samconfig and parameter rules)

ROOT = Path(__file__).resolve().parents[2]

# cfn-lint rules ignored on purpose, each with its reason. Keep this list short
# and narrow: a rule id, never a whole severity.
LINT_IGNORES: dict[str, str] = {}

# Actions that IAM cannot scope to a resource: the only ones allowed on "*".
UNSCOPABLE_ACTIONS = {
    "xray:PutTraceSegments": "X-Ray has no resource-level permissions",
    "xray:PutTelemetryRecords": "X-Ray has no resource-level permissions",
    "cloudwatch:PutMetricData": "scoped by the cloudwatch:namespace condition key, not by resource",
}

STACK = "${AWS::StackName}"
# Resource patterns that may end in a wildcard: per-tenant secrets are created
# at runtime under this prefix (SECRET_PREFIX), one per tenant.
SECRET_PREFIX = f"modjo/{STACK}/tenants/"
TENANT_SECRET_ARN = f"arn:${{AWS::Partition}}:secretsmanager:${{AWS::Region}}:${{AWS::AccountId}}:secret:{SECRET_PREFIX}*"

CALLBACK_PATH = "/integrations/salesforce/callback"
# Routes served without the JWT authorizer: the OAuth callback (the signed state
# authenticates it) and the settings page's static files (its API calls carry
# the JWT) (shared/src/api/console.rs).
# Each is required, and says why it is public.
PUBLIC_ROUTES = {
    ("get", CALLBACK_PATH): "Salesforce redirects the browser here, without a JWT",
    ("get", "/integrations/salesforce/console"): "the settings page must load without a JWT",
    ("get", "/integrations/salesforce/console/{asset}"): "the settings page must load without a JWT",
}
JWT_AUTHORIZER = "ModjoJwt"
CORS_HEADERS = {"authorization", "content-type"}

# What each function may do beyond reading/refreshing tenant credentials, by crate.
_READ_WRITE = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Query"}
EXPECTED = {
    # Settings create the tenant's secret; disconnect deletes it; syncs an admin
    # asks for from the settings page; the Modjo user directory is written in batches.
    "integration-api": {"send": {"SyncJobsQueue"}, "secret_admin": {"CreateSecret", "TagResource", "DeleteSecret"},
                        "signing_key": True,
                        "dynamodb": _READ_WRITE | {"dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"}},
    # Stores the tokens (recreating the secret if it vanished); never deletes one.
    # Calls parked while the tenant needed re-authorisation are replayed on reconnect.
    "oauth-callback": {"send": {"CallEventsQueue"}, "secret_admin": {"CreateSecret", "TagResource"},
                       "signing_key": True, "dynamodb": _READ_WRITE},
    # Follow-up jobs, replays of parked calls, invalid jobs to the DLQ, and the
    # fan-out's failure destination (Lambda sends with the function's role).
    "scheduled-sync": {"send": {"SyncJobsQueue", "CallEventsQueue", "SyncJobsDlq", "SyncFanOutFailuresQueue"},
                       "secret_admin": set(), "signing_key": False,
                       "dynamodb": _READ_WRITE | {"dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"}},
    # Refused messages to the DLQ; replays of parked calls; claims are UpdateItems.
    "call-logger": {"send": {"CallEventsDlq", "CallEventsQueue"}, "secret_admin": set(), "signing_key": False,
                    "dynamodb": _READ_WRITE | {"dynamodb:BatchGetItem", "dynamodb:UpdateItem"}},
    # The comment-state version is an UpdateItem.
    "comment-sync": {"send": {"CommentEventsDlq"}, "secret_admin": set(), "signing_key": False,
                     "dynamodb": _READ_WRITE | {"dynamodb:BatchGetItem", "dynamodb:UpdateItem"}},
}
SECRET_ADMIN_ACTIONS = {"CreateSecret", "TagResource", "DeleteSecret"}
SQS_CONSUME_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"}

# Environment variables set by the platform or read by libraries, not by shared::config.
ENV_NOT_IN_CONFIG = {"RUST_LOG"}
FORBIDDEN_ENV = {"SALESFORCE_EXTRA_ALLOWED_ORIGINS": "test and local-stack escape hatch (README, Local)"}

# Parameter values for the offline transform of the template alone (those without a default).
TRANSFORM_PARAMETERS = {"JwtIssuer": "https://auth.example.com/", "JwtAudience": "modjo-api"}

# What a user gives each samconfig environment on top of the file (on the command
# line, or answering --guided): the parameters no default can provide.
DEPLOY_PATH_VALUES = {
    "default": {
        "JwtIssuer": "https://idp.example.com/modjo-dev",
        "JwtAudience": "modjo-salesforce-api",
        "DomainName": "salesforce.dev.example.com",
        "HostedZoneId": "Z0123456789EXAMPLE",
    },
    "prod": {
        "JwtIssuer": "https://idp.example.com/modjo",
        "JwtAudience": "modjo-salesforce-api",
        "AlarmEmail": "oncall@example.com",
    },
}

# Emitted-metric discovery: the library's EMF calls.
METRICS_SOURCES = ROOT / "shared/src"


class Failures:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")

    def check(self, ok: bool, where: str, message: str) -> None:
        if not ok:
            self.add(where, message)


# ------------------------------------------------------------------ 1. cfn-lint


def run_cfn_lint(template: Path) -> list[str]:
    exe = Path(sys.executable).with_name("cfn-lint")
    if not exe.exists():
        return [f"cfn-lint not found next to {sys.executable}; run infra/scripts/bootstrap.sh"]
    cmd = [str(exe), "--format", "parseable"]
    if LINT_IGNORES:
        cmd += ["--ignore-checks", *LINT_IGNORES]
    cmd += ["--", str(template)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    # Exit code bits: 2 error, 4 warning, 8 informational (not enabled by default).
    if proc.returncode == 0:
        return []
    lines = [l for l in (proc.stdout + proc.stderr).splitlines() if l.strip()]
    return lines or [f"cfn-lint exited with {proc.returncode}"]


# ------------------------------------------------------------------ 2. transform


class OfflineManagedPolicyLoader:
    """Stands in for samtranslator's ManagedPolicyLoader, which lists IAM policies
    through boto3. The translator only calls it when a template names an AWS
    managed policy by name (Policies: [SomePolicyName]); this stack has explicit
    roles, so an empty map is correct and no AWS call is ever made."""

    def load(self) -> dict[str, str]:
        return {}


def load_sam(template: Path) -> dict[str, Any]:
    from samtranslator.yaml_helper import yaml_parse

    return yaml_parse(template.read_text())


def sam_transform(sam: dict[str, Any], parameters: dict[str, str] | None = None) -> dict[str, Any]:
    """What CloudFormation's SAM transform produces for these parameter values."""
    from samtranslator.translator.transform import transform

    # Its usage metrics are never published offline: no warning about them.
    logging.getLogger("samtranslator.metrics").setLevel(logging.ERROR)
    # The translator resolves AWS::Region/AWS::Partition from a boto3 session:
    # give it a region so that it needs neither configuration nor credentials.
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-3")
    packaged = copy.deepcopy(sam)
    # What `sam build` + `sam package` do: replace local code paths with S3 URIs.
    for name, res in packaged.get("Resources", {}).items():
        props = res.get("Properties") or {}
        if res.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            if not props["CodeUri"].startswith("s3://"):
                props["CodeUri"] = f"s3://offline-check/{name}.zip"
    values = dict(TRANSFORM_PARAMETERS if parameters is None else parameters)
    return transform(packaged, values, OfflineManagedPolicyLoader())


# ------------------------------------------------------------------ helpers


def resources(cfn: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in cfn.get("Resources", {}).items() if v.get("Type") == kind}


def getatt_target(value: Any, attribute: str | None = None) -> str | None:
    """`{"Fn::GetAtt": ["X", "Arn"]}` (or "X.Arn") -> "X"."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        ga = value["Fn::GetAtt"]
        parts = ga.split(".", 1) if isinstance(ga, str) else list(ga)
        if attribute is None or (len(parts) > 1 and parts[1] == attribute):
            return parts[0]
    return None


def ref_target(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("Ref"), str):
        return value["Ref"]
    return None


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def role_statements(role: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for policy in as_list(role.get("Properties", {}).get("Policies")):
        for st in as_list(policy.get("PolicyDocument", {}).get("Statement")):
            yield policy.get("PolicyName", "?"), st


def resource_text(value: Any) -> str:
    """A readable form of a Resource entry: literal, Sub template, Ref or GetAtt."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "Fn::Sub" in value:
            sub = value["Fn::Sub"]
            return sub if isinstance(sub, str) else str(sub[0])
        if "Ref" in value:
            return f"Ref:{value['Ref']}"
        if "Fn::GetAtt" in value:
            ga = value["Fn::GetAtt"]
            return "GetAtt:" + (ga if isinstance(ga, str) else ".".join(ga))
    return repr(value)


def queue_name(text: str) -> str:
    """"GetAtt:CallEventsQueue.Arn" -> "CallEventsQueue"; anything else unchanged."""
    m = re.fullmatch(r"GetAtt:(\w+)\.Arn", text)
    return m.group(1) if m else text


def int_value(value: Any, default: int) -> int:
    if value is None:
        return default
    return int(value)


def sub_text(value: Any) -> str:
    """The template string of a `!Sub` (or the literal), for name checks."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub if isinstance(sub, str) else str(sub[0])
    if ref_target(value) == "AWS::StackName":
        return STACK
    return repr(value)


def function_envs(cfn: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: fn.get("Properties", {}).get("Environment", {}).get("Variables", {})
        for name, fn in resources(cfn, "AWS::Lambda::Function").items()
    }


# ------------------------------------------------------------------ 3. invariants


# The local stack provisions the queues and runs their event source mappings as
# the template declares them (infra/local-stack/src/provision.rs, QUEUES), so that
# what is measured locally is what is deployed.
LOCAL_QUEUES = ROOT / "infra/local-stack/src/provision.rs"
LOCAL_QUEUE_NAME = {"CallEventsQueue": "call-events", "CommentEventsQueue": "comment-events",
                    "SyncJobsQueue": "sync-jobs"}


def local_queue_specs() -> tuple[dict[str, dict[str, Any]], int | None]:
    text = LOCAL_QUEUES.read_text()
    specs = {}
    for block in re.findall(r"QueueSpec \{(.*?)\}", text, re.S):
        fields = dict(re.findall(r"(\w+): (\"[^\"]*\"|\d+)", block))
        if "name" in fields:
            specs[fields["name"].strip('"')] = {k: v.strip('"') for k, v in fields.items()}
    count = re.search(r"pub const MAX_RECEIVE_COUNT: u32 = (\d+);", text)
    return specs, int(count.group(1)) if count else None


def check_local_queue(queue: str, q: dict[str, Any], mapping: dict[str, Any], f: Failures) -> None:
    specs, max_receive = local_queue_specs()
    spec = specs.get(LOCAL_QUEUE_NAME.get(queue, ""))
    where = f"{queue} (local stack)"
    if spec is None:
        f.add(where, f"no QueueSpec for it in {LOCAL_QUEUES.relative_to(ROOT)}")
        return
    props = q.get("Properties", {})
    expected = {
        "visibility_timeout_seconds": int_value(props.get("VisibilityTimeout"), 30),
        "batch_size": int_value(mapping.get("BatchSize"), 10),
        "batching_window_seconds": int_value(mapping.get("MaximumBatchingWindowInSeconds"), 0),
    }
    for key, want in expected.items():
        f.check(int(spec.get(key, -1)) == want, where, f"{key} is {spec.get(key)}, the template says {want}")
    redrive = props.get("RedrivePolicy", {})
    f.check(max_receive == redrive.get("maxReceiveCount"), where,
            f"MAX_RECEIVE_COUNT is {max_receive}, the template says {redrive.get('maxReceiveCount')}")


def dead_letter_queues(cfn: dict[str, Any]) -> dict[str, str]:
    """{queue: why it is a dead-letter queue}: redrive targets and the SQS
    failure destinations of async invocations."""
    queues = resources(cfn, "AWS::SQS::Queue")
    out: dict[str, str] = {}
    for name, q in queues.items():
        dlq = getatt_target((q.get("Properties", {}).get("RedrivePolicy") or {}).get("deadLetterTargetArn"), "Arn")
        if dlq in queues:
            out[dlq] = f"DLQ of {name}"
    for name, c in resources(cfn, "AWS::Lambda::EventInvokeConfig").items():
        dest = getatt_target(
            c.get("Properties", {}).get("DestinationConfig", {}).get("OnFailure", {}).get("Destination"), "Arn"
        )
        if dest in queues:
            out[dest] = f"failure destination of {ref_target(c['Properties'].get('FunctionName'))}"
    return out


def alarms_on(cfn: dict[str, Any], namespace: str, metric: str, dimension: str) -> dict[str, list[dict[str, Any]]]:
    """{target of the alarm's dimension (queue or function): [alarm properties]}."""
    out: dict[str, list[dict[str, Any]]] = {}
    for alarm in resources(cfn, "AWS::CloudWatch::Alarm").values():
        p = alarm.get("Properties", {})
        if p.get("Namespace") != namespace or p.get("MetricName") != metric:
            continue
        for d in as_list(p.get("Dimensions")):
            if d.get("Name") == dimension:
                target = getatt_target(d.get("Value"), "QueueName") or ref_target(d.get("Value"))
                if target:
                    out.setdefault(target, []).append(p)
    return out


def fires_at(p: dict[str, Any], value: float) -> bool:
    op, threshold = p.get("ComparisonOperator"), float(p.get("Threshold", -1))
    return (op == "GreaterThanOrEqualToThreshold" and threshold <= value) or (
        op == "GreaterThanThreshold" and threshold < value
    )


def check_queues(cfn: dict[str, Any], f: Failures) -> None:
    queues = resources(cfn, "AWS::SQS::Queue")
    functions = resources(cfn, "AWS::Lambda::Function")
    mappings = resources(cfn, "AWS::Lambda::EventSourceMapping")

    dlq_of: dict[str, str] = {}
    for name, q in queues.items():
        redrive = q.get("Properties", {}).get("RedrivePolicy")
        if redrive:
            dlq = getatt_target(redrive.get("deadLetterTargetArn"), "Arn")
            if dlq not in queues:
                f.add(name, "RedrivePolicy.deadLetterTargetArn must be !GetAtt <DLQ>.Arn of a queue in this template")
                continue
            dlq_of[name] = dlq
            count = redrive.get("maxReceiveCount")
            f.check(isinstance(count, int) and 3 <= count <= 10, name,
                    f"maxReceiveCount should be between 3 and 10, got {count!r}")
    dead = dead_letter_queues(cfn)

    depth_alarms = alarms_on(cfn, "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName")
    age_alarms = alarms_on(cfn, "AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName")
    for name, q in queues.items():
        props = q.get("Properties", {})
        f.check(props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props, name,
                "queue is not encrypted (SqsManagedSseEnabled or KmsMasterKeyId)")
        retention = int_value(props.get("MessageRetentionPeriod"), 345600)
        if name in dead:
            f.check(retention == 1209600, name, f"a dead-letter queue ({dead[name]}) keeps messages 14 days")
            f.check("RedrivePolicy" not in props, name, "a dead-letter queue has no DLQ of its own")
            found = depth_alarms.get(name, [])
            f.check(bool(found), name, f"dead-letter queue ({dead[name]}) without an alarm on ApproximateNumberOfMessagesVisible")
            for p in found:
                f.check(fires_at(p, 1), name, "a dead-letter queue's alarm must fire at one visible message")
            continue
        if name not in dlq_of:
            f.add(name, "work queue without RedrivePolicy/DLQ (every queue has a DLQ)")
        else:
            dst = int_value(queues[dlq_of[name]].get("Properties", {}).get("MessageRetentionPeriod"), 345600)
            f.check(dst > retention, name, f"DLQ retention ({dst}s) must exceed the queue's ({retention}s)")
        ages = age_alarms.get(name, [])
        f.check(bool(ages), name, "work queue without an alarm on ApproximateAgeOfOldestMessage "
                "(a stalled consumer never fills the DLQ; its messages expire)")
        for p in ages:
            threshold = float(p.get("Threshold", retention))
            f.check(threshold <= retention / 4, name,
                    f"the age alarm ({threshold:.0f}s) must fire well before messages expire ({retention}s)")

    consumed: dict[str, list[str]] = {}
    for name, m in mappings.items():
        p = m.get("Properties", {})
        queue = getatt_target(p.get("EventSourceArn"), "Arn")
        if queue not in queues:
            continue
        consumed.setdefault(queue, []).append(name)
        f.check("ReportBatchItemFailures" in as_list(p.get("FunctionResponseTypes")), name,
                "SQS event source mapping without FunctionResponseTypes: [ReportBatchItemFailures]")
        fn = ref_target(p.get("FunctionName"))
        if fn not in functions:
            f.add(name, "FunctionName must be !Ref <function> of this template")
            continue
        timeout = int_value(functions[fn].get("Properties", {}).get("Timeout"), 3)
        window = int_value(p.get("MaximumBatchingWindowInSeconds"), 0)
        visibility = int_value(queues[queue].get("Properties", {}).get("VisibilityTimeout"), 30)
        need = 6 * timeout + window
        f.check(visibility >= need, queue,
                f"VisibilityTimeout {visibility}s < 6 x {fn} Timeout {timeout}s + batching window {window}s = {need}s")
        if "ScalingConfig" in p:
            mc = p["ScalingConfig"].get("MaximumConcurrency")
            f.check(isinstance(mc, int) and 2 <= mc <= 1000, name, f"MaximumConcurrency must be 2..1000, got {mc!r}")
        check_local_queue(queue, queues[queue], p, f)
    for name in queues:
        if name in dead:
            f.check(name not in consumed, name, "a dead-letter queue is for inspection and redrive, not consumed by a function")
        else:
            f.check(len(consumed.get(name, [])) == 1, name,
                    f"work queue must have exactly one consumer, has {len(consumed.get(name, []))}")


def check_alarms(cfn: dict[str, Any], crate_of: dict[str, str], f: Failures) -> None:
    # Errors and Throttles of every function.
    for metric in ("Errors", "Throttles"):
        found = alarms_on(cfn, "AWS/Lambda", metric, "FunctionName")
        for fn in resources(cfn, "AWS::Lambda::Function"):
            f.check(fn in found, fn, f"no alarm on AWS/Lambda {metric}")
            for p in found.get(fn, []):
                f.check(fires_at(p, 1), fn, f"the {metric} alarm must fire at one")

    # The scheduled fan-out (EventBridge invokes asynchronously) has a failure destination.
    configs = {ref_target(c["Properties"].get("FunctionName")): c["Properties"]
               for c in resources(cfn, "AWS::Lambda::EventInvokeConfig").values()}
    for fn, crate in crate_of.items():
        if crate != "scheduled-sync":
            continue
        c = configs.get(fn)
        if c is None:
            f.add(fn, "no EventInvokeConfig: a failed scheduled fan-out would vanish after Lambda's retries")
            continue
        dest = getatt_target(c.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination"), "Arn")
        f.check(dest in resources(cfn, "AWS::SQS::Queue"), fn, "the fan-out's OnFailure destination must be a queue of this stack")
        f.check(int_value(c.get("MaximumEventAgeInSeconds"), 21600) < 900, fn,
                "a fan-out older than the 15-minute schedule is superseded: MaximumEventAgeInSeconds < 900")

    # Every alarm notifies: AlarmTopicArn when given, else the topic created for it.
    topics = resources(cfn, "AWS::SNS::Topic")
    conditions = cfn.get("Conditions", {})
    for name, alarm in resources(cfn, "AWS::CloudWatch::Alarm").items():
        p = alarm.get("Properties", {})
        for key in ("AlarmActions", "OKActions"):
            actions = as_list(p.get(key))
            f.check(len(actions) == 1, name, f"{key} must name the alarm topic, has {len(actions)} actions")
            for action in actions:
                branch = action.get("Fn::If") if isinstance(action, dict) else None
                ok = (
                    isinstance(branch, list) and len(branch) == 3
                    and ref_target(branch[1]) in topics
                    and topics[ref_target(branch[1])].get("Condition") == branch[0]
                    and conditions.get(branch[0]) == {"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}
                    and ref_target(branch[2]) == "AlarmTopicArn"
                )
                f.check(ok, name, f"{key} must be !If [<no AlarmTopicArn>, !Ref <the topic created then>, !Ref AlarmTopicArn]")


def emitted_metrics() -> tuple[set[str], set[str], list[str]]:
    """(metric names, Function dimension values, dimension names) that
    shared/src emits: the literal names given to `.count(` and `.put(` (a `match`
    of literals included), the literals given to `.metrics(` and the dimensions
    `App::metrics` sets."""
    names: set[str] = set()
    functions: set[str] = set()
    for path in METRICS_SOURCES.rglob("*.rs"):
        src = path.read_text()
        # Test modules (at the end of a file) emit nothing in production.
        src = src.split("#[cfg(test)]", 1)[0]
        for m in re.finditer(r"\.(count|put)\(", src):
            first = first_argument(src, m.end())
            rest = src[m.end() + len(first):m.end() + len(first) + 200]
            # Metrics::put(name, Unit::…, value); other `put`s are not metrics.
            if m.group(1) == "put" and not re.match(r"\s*,\s*(crate::telemetry::)?Unit::", rest):
                continue
            names.update(re.findall(r'"([A-Z][A-Za-z0-9]*)"', first))
        functions.update(re.findall(r'\.metrics\("([a-z-]+)"\)', src))
    app = (METRICS_SOURCES / "app.rs").read_text()
    body = app[app.find("pub fn metrics"):]
    body = body[: body.find("\n    }")]
    dims = re.findall(r'\.dimension\("([A-Za-z]+)"', body)
    return names, functions, dims


def first_argument(src: str, start: int) -> str:
    """The text of a call's first argument, from just after its `(`."""
    depth, i, quoted = 0, start, False
    while i < len(src):
        c = src[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                break
            depth -= 1
        elif c == "," and depth == 0:
            break
        i += 1
    return src[start:i]


def check_dashboard(cfn: dict[str, Any], f: Failures) -> None:
    dashboards = resources(cfn, "AWS::CloudWatch::Dashboard")
    if len(dashboards) != 1:
        f.add("Resources", f"expected one CloudWatch dashboard, found {len(dashboards)}")
        return
    (name, dash), = dashboards.items()
    p = dash.get("Properties", {})
    f.check(STACK in sub_text(p.get("DashboardName")), name, "DashboardName must contain the stack name")
    text = sub_text(p.get("DashboardBody"))
    try:
        body = json.loads(text)
    except json.JSONDecodeError as e:
        f.add(name, f"DashboardBody is not JSON: {e}")
        return
    namespaces = {str(env.get("METRICS_NAMESPACE")) for env in function_envs(cfn).values()}
    if len(namespaces) != 1:
        f.add("Globals", f"every function must emit to one METRICS_NAMESPACE, found {sorted(namespaces)}")
        return
    namespace = namespaces.pop()
    names, function_labels, dims = emitted_metrics()
    f.check(dims == ["Function", "Stage"], "shared/src/app.rs", f"App::metrics dimensions are {dims}; update the dashboard and this check")
    queues = set(resources(cfn, "AWS::SQS::Queue"))
    lambdas = set(resources(cfn, "AWS::Lambda::Function"))
    graphed: set[str] = set()
    for widget in body.get("widgets", []):
        title = widget.get("properties", {}).get("title", "?")
        for metric in widget.get("properties", {}).get("metrics", []):
            parts = [m for m in metric if isinstance(m, str)]
            ns, metric_name, pairs = parts[0], parts[1], parts[2:]
            dimensions = dict(zip(pairs[::2], pairs[1::2]))
            where = f"{name} ({title})"
            if ns == namespace:
                graphed.add(metric_name)
                f.check(metric_name in names, where, f"{metric_name} is not a metric shared/src emits")
                f.check(set(dimensions) == {"Function", "Stage"}, where,
                        f"{metric_name} must name exactly the dimensions the code emits (Function, Stage), names {sorted(dimensions)}")
                f.check(dimensions.get("Function") in function_labels, where,
                        f"Function={dimensions.get('Function')} is not a function that emits metrics ({sorted(function_labels)})")
                f.check(dimensions.get("Stage") == "${Stage}", where, "Stage must be the Stage parameter")
            elif ns == "AWS/SQS":
                m = re.fullmatch(r"\$\{(\w+)\.QueueName\}", dimensions.get("QueueName", ""))
                f.check(bool(m) and m.group(1) in queues, where, f"QueueName {dimensions.get('QueueName')} is not a queue of this stack")
            elif ns == "AWS/Lambda":
                m = re.fullmatch(r"\$\{(\w+)\}", dimensions.get("FunctionName", ""))
                f.check(bool(m) and m.group(1) in lambdas, where, f"FunctionName {dimensions.get('FunctionName')} is not a function of this stack")
            else:
                f.add(where, f"unexpected namespace {ns}")
    for needed in ("SalesforceApiCalls", "SyncJobDuration"):
        f.check(needed in graphed, name, f"the dashboard does not graph {needed}")
    f.check(any(n.startswith("Calls") for n in graphed), name, "the dashboard does not graph calls by outcome")


def dynamo_constants(f: Failures) -> dict[str, str] | None:
    path = ROOT / "shared/src/adapters/dynamo/mod.rs"
    table_path = ROOT / "shared/src/adapters/dynamo/table.rs"
    try:
        src = path.read_text()
        table_src = table_path.read_text()
    except OSError as e:
        f.add(str(path.parent), f"cannot read: {e}")
        return None
    names = {"PK", "SK", "GSI1", "GSI1_PK", "GSI1_SK", "GSI2", "GSI2_PK", "GSI2_SK", "TTL"}
    consts = dict(re.findall(r'pub const (' + "|".join(sorted(names)) + r'): &str = "([^"]+)";', src))
    missing = names - consts.keys()
    if missing:
        f.add(str(path), f"constants {sorted(missing)} not found; update check_template.py with the adapter")
        return None
    body = table_src[table_src.find("pub async fn create_table"):]
    for token in ("BillingMode::PayPerRequest", "ProjectionType::All", "ScalarAttributeType::S"):
        f.check(token in body, str(table_path), f"create_table no longer uses {token}; update template.yaml and this check")
    return consts


def check_table(cfn: dict[str, Any], f: Failures) -> None:
    tables = resources(cfn, "AWS::DynamoDB::Table")
    if len(tables) != 1:
        f.add("Resources", f"expected exactly one DynamoDB table, found {len(tables)}")
        return
    c = dynamo_constants(f)
    if c is None:
        return
    (name, table), = tables.items()
    p = table.get("Properties", {})
    expect_attrs = {c[k]: "S" for k in ("PK", "SK", "GSI1_PK", "GSI1_SK", "GSI2_PK", "GSI2_SK")}
    attrs = {a.get("AttributeName"): a.get("AttributeType") for a in as_list(p.get("AttributeDefinitions"))}
    f.check(attrs == expect_attrs, name, f"AttributeDefinitions {attrs} != {expect_attrs} (adapters/dynamo)")
    keys = [(k.get("AttributeName"), k.get("KeyType")) for k in as_list(p.get("KeySchema"))]
    f.check(keys == [(c["PK"], "HASH"), (c["SK"], "RANGE")], name, f"KeySchema {keys} != pk HASH, sk RANGE")
    gsis = {g.get("IndexName"): g for g in as_list(p.get("GlobalSecondaryIndexes"))}
    expected_gsis = {c["GSI1"]: ("GSI1_PK", "GSI1_SK"), c["GSI2"]: ("GSI2_PK", "GSI2_SK")}
    f.check(set(gsis) == set(expected_gsis), name, f"GSIs {sorted(map(str, gsis))} != {sorted(expected_gsis)} (adapters/dynamo)")
    for index, (hash_key, range_key) in expected_gsis.items():
        g = gsis.get(index)
        if g is None:
            continue
        gkeys = [(k.get("AttributeName"), k.get("KeyType")) for k in as_list(g.get("KeySchema"))]
        f.check(gkeys == [(c[hash_key], "HASH"), (c[range_key], "RANGE")], name, f"GSI {index} KeySchema {gkeys}")
        f.check(g.get("Projection", {}).get("ProjectionType") == "ALL", name, f"GSI {index} Projection must be ALL")
    ttl = p.get("TimeToLiveSpecification", {})
    f.check(ttl.get("AttributeName") == c["TTL"] and ttl.get("Enabled") is True, name,
            f"TimeToLiveSpecification must enable TTL on {c['TTL']!r}, got {ttl}")
    f.check(p.get("BillingMode") == "PAY_PER_REQUEST", name, "BillingMode must be PAY_PER_REQUEST")
    f.check(p.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is True, name,
            "point-in-time recovery must be enabled")
    f.check(p.get("SSESpecification", {}).get("SSEEnabled") is True, name, "SSESpecification.SSEEnabled must be true")
    f.check(table.get("DeletionPolicy") == "Retain" and table.get("UpdateReplacePolicy") == "Retain", name,
            "the table must have DeletionPolicy and UpdateReplacePolicy Retain")


def function_crates() -> set[str]:
    return {p.parent.name for p in (ROOT / "functions").glob("*/Cargo.toml")}


def check_functions(sam: dict[str, Any], cfn: dict[str, Any], f: Failures) -> dict[str, str]:
    """Returns {function logical id: crate name}."""
    crates = function_crates()
    crate_of: dict[str, str] = {}
    known_vars = set(re.findall(r'pub const [A-Z0-9_]+: &str = "([A-Z0-9_]+)";',
                                (ROOT / "shared/src/config.rs").read_text()))
    globals_env = sam.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    for name, res in sam.get("Resources", {}).items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        meta, props = res.get("Metadata", {}), res.get("Properties", {})
        binary = meta.get("BuildProperties", {}).get("Binary")
        f.check(meta.get("BuildMethod") == "rust-cargolambda", name, "Metadata.BuildMethod must be rust-cargolambda")
        if not binary:
            f.add(name, "Metadata.BuildProperties.Binary (the crate's binary name) is missing")
            continue
        crate_of[name] = binary
        code = props.get("CodeUri")
        manifest = ROOT / str(code) / "Cargo.toml" if isinstance(code, str) else None
        f.check(manifest is not None and manifest.exists() and "[workspace]" in manifest.read_text(), name,
                f"CodeUri {code!r} must be the Cargo workspace root (cargo lambda build --bin {binary} runs there)")
        f.check(binary in crates, name, f"Binary {binary!r} is not a crate under functions/")
        f.check(res.get("Properties", {}).get("Role") is not None, name,
                "no explicit Role: SAM would attach AWS managed policies granting Resource \"*\"")
    missing = crates - set(crate_of.values())
    f.check(not missing, "Resources", f"function crates without a function in the template: {sorted(missing)}")

    for name, fn in resources(cfn, "AWS::Lambda::Function").items():
        p = fn.get("Properties", {})
        f.check(p.get("Runtime") == "provided.al2023" and p.get("Handler") == "bootstrap", name,
                "Runtime provided.al2023 with Handler bootstrap")
        f.check(p.get("Architectures") == [{"Ref": "Architecture"}], name,
                "Architectures must come from the Architecture parameter")
        f.check(p.get("LoggingConfig", {}).get("LogFormat") == "JSON", name, "LoggingConfig.LogFormat must be JSON")
        env = p.get("Environment", {}).get("Variables", {})
        for var in env:
            if var in FORBIDDEN_ENV:
                f.add(name, f"{var} must never be set in the template: {FORBIDDEN_ENV[var]}")
            elif var not in known_vars and var not in ENV_NOT_IN_CONFIG:
                f.add(name, f"environment variable {var} is not a name in shared/src/config.rs `vars`")
        for var in ("STAGE", "TABLE_NAME", "SECRET_PREFIX"):
            f.check(var in env, name, f"environment variable {var} is missing")
        f.check(sub_text(env.get("SECRET_PREFIX")) == SECRET_PREFIX, name,
                f"SECRET_PREFIX must be {SECRET_PREFIX} (the prefix the IAM policies grant)")
        if crate_of.get(name) in ("integration-api", "oauth-callback"):
            for var in ("OAUTH_CALLBACK_URL", "MODJO_RETURN_URL", "STATE_SIGNING_SECRET_ID"):
                f.check(var in env, name, f"environment variable {var} is missing")
        if crate_of.get(name) == "oauth-callback":
            f.check("CALL_EVENTS_QUEUE_URL" in env, name, "environment variable CALL_EVENTS_QUEUE_URL is missing")
        if crate_of.get(name) == "scheduled-sync":
            f.check("SYNC_JOBS_QUEUE_URL" in env, name, "environment variable SYNC_JOBS_QUEUE_URL is missing")
    f.check(not (set(globals_env) & set(FORBIDDEN_ENV)), "Globals", "forbidden environment variable in Globals")
    return crate_of


def check_iam(cfn: dict[str, Any], crate_of: dict[str, str], f: Failures) -> None:
    res = cfn.get("Resources", {})
    table = next(iter(resources(cfn, "AWS::DynamoDB::Table")), None)
    signing = next(iter(resources(cfn, "AWS::SecretsManager::Secret")), None)

    # Generic rules, on every role and policy resource of the stack.
    for name, r in res.items():
        if r.get("Type") not in ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            continue
        p = r.get("Properties", {})
        if r["Type"] == "AWS::IAM::Role":
            statements = list(role_statements(r))
            for arn in as_list(p.get("ManagedPolicyArns")):
                f.add(name, f"managed policy {resource_text(arn)} attached: AWS managed Lambda policies grant "
                            "Resource \"*\"; write scoped inline statements instead")
        else:
            statements = [("(policy)", st) for st in as_list(p.get("PolicyDocument", {}).get("Statement"))]
        for pname, st in statements:
            if st.get("Effect") != "Allow":
                continue
            where = f"{name}/{pname}"
            actions = [a for a in as_list(st.get("Action")) if isinstance(a, str)]
            f.check("NotAction" not in st and "NotResource" not in st, where, "NotAction/NotResource are not allowed")
            for a in actions:
                f.check("*" not in a, where, f"wildcard action {a!r}")
                f.check(a.lower() not in ("dynamodb:scan", "dynamodb:partiqlselect"), where,
                        f"{a} reads the whole table across tenants; use Query on a tenant key")
            for rs in as_list(st.get("Resource")):
                text = resource_text(rs)
                if text == "*":
                    bad = [a for a in actions if a not in UNSCOPABLE_ACTIONS]
                    f.check(not bad, where, f"Resource \"*\" for {bad}: name the resource")
                elif "*" in text and text != TENANT_SECRET_ARN:
                    f.add(where, f"wildcard resource {text!r} (only the tenant-secret prefix may end in *)")

    # Per-function expectations.
    for fn_name, crate in crate_of.items():
        fn = res.get(fn_name, {})
        role_name = getatt_target(fn.get("Properties", {}).get("Role"), "Arn")
        if role_name not in res:
            f.add(fn_name, "Role must be !GetAtt <role>.Arn of a role in this template")
            continue
        expected = EXPECTED.get(crate)
        if expected is None:
            f.add(fn_name, f"no IAM expectations for crate {crate!r} in check_template.py")
            continue
        grants: dict[str, set[str]] = {}
        for _, st in role_statements(res[role_name]):
            if st.get("Effect") != "Allow":
                continue
            for a in as_list(st.get("Action")):
                for rs in as_list(st.get("Resource")):
                    grants.setdefault(a, set()).add(resource_text(rs))
        where = f"{fn_name} ({role_name})"
        f.check(TENANT_SECRET_ARN in grants.get("secretsmanager:GetSecretValue", set()), where,
                "GetSecretValue on the tenant-secret prefix is missing")
        f.check(TENANT_SECRET_ARN in grants.get("secretsmanager:PutSecretValue", set()), where,
                "PutSecretValue on the tenant-secret prefix is missing (any function may refresh a token)")
        for a in sorted(SECRET_ADMIN_ACTIONS):
            has = TENANT_SECRET_ARN in grants.get(f"secretsmanager:{a}", set())
            want = a in expected["secret_admin"]
            f.check(has == want, where,
                    f"secretsmanager:{a} {'missing' if want else 'granted'} (expected only {sorted(expected['secret_admin']) or 'none'})")
        reads_key = f"Ref:{signing}" in grants.get("secretsmanager:GetSecretValue", set())
        f.check(reads_key == expected["signing_key"], where,
                f"state signing key read {'missing' if expected['signing_key'] else 'granted'}")
        secret_resources = {r for a, rs in grants.items() if a.startswith("secretsmanager:") for r in rs}
        f.check(secret_resources <= {TENANT_SECRET_ARN, f"Ref:{signing}"}, where,
                f"secrets outside the tenant prefix and the signing key: {sorted(secret_resources)}")
        sends = {queue_name(r) for r in grants.get("sqs:SendMessage", set())}
        f.check(sends == expected["send"], where, f"sqs:SendMessage on {sorted(sends)}, expected {sorted(expected['send'])}")
        consumed = {
            getatt_target(m["Properties"].get("EventSourceArn"), "Arn")
            for m in resources(cfn, "AWS::Lambda::EventSourceMapping").values()
            if ref_target(m["Properties"].get("FunctionName")) == fn_name
        }
        for a in SQS_CONSUME_ACTIONS | {"sqs:GetQueueAttributes"}:
            got = {queue_name(r) for r in grants.get(a, set())}
            f.check(got == consumed, where, f"{a} on {sorted(got)}, expected the consumed queues {sorted(consumed)}")
        table_resources = {r for a, rs in grants.items() if a.startswith("dynamodb:") for r in rs}
        f.check(bool(table_resources), where, "no DynamoDB access")
        actions = {a for a in grants if a.startswith("dynamodb:")}
        f.check(actions == expected["dynamodb"], where,
                f"DynamoDB actions {sorted(actions)}, expected {sorted(expected['dynamodb'])}")
        f.check(table_resources <= {f"GetAtt:{table}.Arn", f"${{{table}.Arn}}/index/gsi1",
                                    f"${{{table}.Arn}}/index/gsi2"}, where,
                f"DynamoDB resources beyond the table and its index: {sorted(table_resources)}")


def check_routes(cfn: dict[str, Any], f: Failures, web_origin: Any = None) -> None:
    """`web_origin`: the ModjoWebOrigin value the transform was given (the
    translator resolves it into the API definition)."""
    apis = resources(cfn, "AWS::ApiGatewayV2::Api")
    if len(apis) != 1:
        f.add("Resources", f"expected one HTTP API, found {len(apis)}")
        return
    (name, api), = apis.items()
    body = api.get("Properties", {}).get("Body", {})
    schemes = body.get("components", {}).get("securitySchemes", {})
    jwt = schemes.get(JWT_AUTHORIZER, {}).get("x-amazon-apigateway-authorizer", {})
    f.check(jwt.get("type") == "jwt", name, f"authorizer {JWT_AUTHORIZER} must be a JWT authorizer")
    conf = jwt.get("jwtConfiguration", {})
    f.check(conf.get("issuer") == {"Ref": "JwtIssuer"}, name, "JWT issuer must come from the JwtIssuer parameter")
    f.check(conf.get("audience") == [{"Ref": "JwtAudience"}], name, "JWT audience must come from JwtAudience")
    seen: set[tuple[str, str]] = set()
    jwt_methods: set[str] = set()
    for path, methods in body.get("paths", {}).items():
        for method, op in methods.items():
            if not isinstance(op, dict) or "x-amazon-apigateway-integration" not in op:
                continue
            route = f"{method.upper()} {path}"
            names = {k for s in as_list(op.get("security")) for k in s}
            f.check(method not in ("x-amazon-apigateway-any-method", "options"), route,
                    "a route for ANY or OPTIONS catches CORS preflights (which carry no JWT): name the methods")
            if (method, path) in PUBLIC_ROUTES:
                seen.add((method, path))
                f.check(names <= {"NONE"}, route, f"{PUBLIC_ROUTES[(method, path)]}, has {sorted(names)}")
            else:
                f.check(names == {JWT_AUTHORIZER}, route, f"must require the {JWT_AUTHORIZER} authorizer, has {sorted(names)}")
                jwt_methods.add(method.upper())
            f.check(path.startswith("/integrations/salesforce/"), route, "routes live under /integrations/salesforce/")
    for route in PUBLIC_ROUTES:
        f.check(route in seen, name, f"no {route[0].upper()} {route[1]} route")
    f.check(bool(jwt_methods), name, "expected the admin routes besides the callback")

    cors = body.get("x-amazon-apigateway-cors")
    if not isinstance(cors, dict):
        f.add(name, "no CorsConfiguration: browsers on ModjoWebOrigin cannot call the admin routes")
        return
    want = [web_origin] if web_origin is not None else None
    f.check(want is None or cors.get("allowOrigins") == want, name,
            f"CORS allowOrigins must be exactly ModjoWebOrigin ({want}), is {cors.get('allowOrigins')}")
    f.check("*" not in as_list(cors.get("allowOrigins")), name, "CORS must not allow every origin")
    f.check(CORS_HEADERS <= {h.lower() for h in as_list(cors.get("allowHeaders"))}, name,
            f"CORS allowHeaders must include {sorted(CORS_HEADERS)}")
    f.check(jwt_methods <= {m.upper() for m in as_list(cors.get("allowMethods"))}, name,
            f"CORS allowMethods must include the routes' methods {sorted(jwt_methods)}")
    f.check(cors.get("allowCredentials") in (None, False), name, "CORS allowCredentials: the API takes a bearer token, not cookies")


def check_schedule(cfn: dict[str, Any], crate_of: dict[str, str], f: Failures) -> None:
    sync = [n for n, c in crate_of.items() if c == "scheduled-sync"]
    rules = [
        r for r in resources(cfn, "AWS::Events::Rule").values()
        if any(getatt_target(t.get("Arn"), "Arn") in sync for t in as_list(r["Properties"].get("Targets")))
    ]
    f.check(any(r["Properties"].get("ScheduleExpression") == "rate(15 minutes)" for r in rules), "scheduled-sync",
            "no EventBridge rule rate(15 minutes) targeting scheduled-sync")


def check_names_and_outputs(cfn: dict[str, Any], crate_of: dict[str, str], f: Failures) -> None:
    """Two stacks (of one stage, or one account) must share nothing; the outputs
    give a deployer what the README asks them to use."""
    for name, g in resources(cfn, "AWS::Logs::LogGroup").items():
        f.check(STACK in sub_text(g["Properties"].get("LogGroupName")), name, "LogGroupName must contain the stack name")
    for name, s in resources(cfn, "AWS::SecretsManager::Secret").items():
        f.check(STACK in sub_text(s["Properties"].get("Name")), name, "the secret's Name must contain the stack name")
    outputs = cfn.get("Outputs", {})
    for var, key in deploy.OUTPUT_ENV.items():
        f.check(key in outputs, "Outputs", f"no {key} output (README: MODJO_AWS=real reads {var} from it)")
    f.check(sub_text(outputs.get("SecretPrefix", {}).get("Value")) == SECRET_PREFIX, "Outputs",
            f"SecretPrefix must be the functions' SECRET_PREFIX {SECRET_PREFIX}")
    for dlq in dead_letter_queues(cfn):
        f.check(any(ref_target(o.get("Value")) == dlq for o in outputs.values()), "Outputs", f"no output names {dlq}'s URL")
    # The callback to paste is exactly the one the functions send to Salesforce.
    envs = function_envs(cfn)
    callback = outputs.get("CallbackUrl", {}).get("Value")
    f.check(callback is not None, "Outputs", "no CallbackUrl output (the URL to paste into the connected app)")
    for fn, crate in crate_of.items():
        if crate in ("integration-api", "oauth-callback"):
            f.check(envs.get(fn, {}).get("OAUTH_CALLBACK_URL") == callback, fn,
                    "OAUTH_CALLBACK_URL must be exactly the CallbackUrl output")


def check_named_files(template: Path, f: Failures) -> None:
    """Every file the template's text names exists in the repository."""
    text = template.read_text()
    for m in sorted(set(re.findall(r"(?<![\w./-])((?:[\w.-]+/)*[\w.-]+\.(?:md|rs|py|sh|toml|txt|json))\b", text))):
        f.check((ROOT / m).exists(), template.name, f"names {m}, which is not in the repository")


def invariants(template: Path, sam: dict[str, Any], cfn: dict[str, Any], f: Failures, web_origin: Any = None) -> None:
    try:
        check_queues(cfn, f)
        check_table(cfn, f)
        crate_of = check_functions(sam, cfn, f)
        check_alarms(cfn, crate_of, f)
        check_dashboard(cfn, f)
        check_iam(cfn, crate_of, f)
        check_routes(cfn, f, web_origin)
        check_schedule(cfn, crate_of, f)
        check_names_and_outputs(cfn, crate_of, f)
        check_named_files(template, f)
    except Exception as e:  # a shape the checks do not expect is a failure, not a pass
        f.add("check_template.py", f"unexpected template shape: {type(e).__name__}: {e}")


# ------------------------------------------------------------------ 4. deploy paths


def resolved_architectures(cfn: dict[str, Any], parameters: dict[str, str]) -> dict[str, list[str]]:
    """Each function's Architectures with parameter references resolved."""
    out = {}
    for name, fn in resources(cfn, "AWS::Lambda::Function").items():
        archs = []
        for a in as_list(fn.get("Properties", {}).get("Architectures", ["x86_64"])):
            archs.append(parameters.get(ref_target(a), f"unresolved {a}") if ref_target(a) else a)
        out[name] = archs
    return out


def overrides_of(argv: list[str]) -> dict[str, str]:
    """The parameters one rendered SAM command passes, read the way SAM reads them."""
    i = argv.index("--parameter-overrides")
    tokens = []
    for token in argv[i + 1:]:
        if token.startswith("--"):
            break
        tokens.append(token)
    return deploy.parse_overrides(tokens, " ".join(argv[:2]))


def check_deploy_paths(
    template: Path, samconfig: Path, sam: dict[str, Any], f: Failures, known: set[str]
) -> list[str]:
    """Renders `sam build` and `sam deploy` for each samconfig environment and
    architecture as infra/scripts/deploy.py runs them; returns the paths checked.
    `known`: invariant failures already reported for the template's defaults."""
    config = deploy.load_samconfig(samconfig)
    checked = []
    for env in sorted(config):
        if not isinstance(config[env], dict):
            continue
        values = DEPLOY_PATH_VALUES.get(env)
        if values is None:
            f.add("samconfig.toml", f"environment {env!r}: add what a deployer gives it to DEPLOY_PATH_VALUES in check_template.py")
            continue
        saved = deploy.config_parameters(config, env)
        for name in values:
            f.check(name not in saved, f"samconfig.toml [{env}]", f"{name} has a value in the file: a placeholder deploys as if real")
        for arch in deploy.ARCHITECTURES:
            where = f"deploy path {env}/{arch}"
            # Without what only the deployer knows, nothing is built or deployed.
            bare = deploy.plan(env, arch, config=config, template=sam)
            for name in deploy.missing_required(bare.parameters, sam):
                f.check(any(p.startswith(f"{name}:") for p in bare.problems), where,
                        f"a deploy without {name} (no default) is not refused")
            f.check(bool(bare.problems), where, "a deploy without the parameters only the deployer knows is not refused")

            p = deploy.plan(env, arch, dict(values), config=config, template=sam)
            f.check(not p.problems, where, f"refused with every parameter given: {p.problems}")
            build, dep = overrides_of(p.build), overrides_of(p.deploy)
            f.check(build == dep, where, f"sam build and sam deploy get different parameters: {build} vs {dep}")
            f.check(dep.get("Architecture") == arch, where, f"Architecture={dep.get('Architecture')}, asked {arch}")
            for name, value in {**saved, **values}.items():
                if name == "Architecture":
                    continue
                f.check(build.get(name) == value and dep.get(name) == value, where,
                        f"{name}={value} from samconfig/the deployer does not reach both commands")
            for name in deploy.missing_required({}, sam):
                f.check(name in dep, where, f"required parameter {name} missing from sam deploy")
            try:
                built = resolved_architectures(sam_transform(sam, deploy.effective(build, sam)), deploy.effective(build, sam))
                cfn = sam_transform(sam, deploy.effective(dep, sam))
            except Exception as e:
                f.add(where, f"SAM transform failed: {e}")
                continue
            deployed = resolved_architectures(cfn, deploy.effective(dep, sam))
            f.check(built == deployed and all(a == [arch] for a in deployed.values()), where,
                    f"functions built as {built}, deployed as {deployed}")
            sub = Failures()
            invariants(template, sam, cfn, sub, deploy.effective(dep, sam).get("ModjoWebOrigin"))
            for item in sub.items:
                if item not in known:
                    f.add(where, item)
            checked.append(f"{env}/{arch}")
    return checked


# ------------------------------------------------------------------ main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("template", nargs="?", default=str(ROOT / "template.yaml"), help="default: template.yaml")
    ap.add_argument("--samconfig", default=str(deploy.SAMCONFIG), help="default: samconfig.toml")
    args = ap.parse_args()
    template = Path(args.template).resolve()
    samconfig = Path(args.samconfig).resolve()
    print(f"checking {template} with {samconfig}")

    lint = run_cfn_lint(template)
    if lint:
        print("FAIL cfn-lint:")
        for line in lint:
            print(f"  {line}")
    else:
        print("ok   cfn-lint: no errors, no warnings"
              + (f" (ignored: {', '.join(f'{k} ({v})' for k, v in LINT_IGNORES.items())})" if LINT_IGNORES else ""))

    try:
        sam = load_sam(template)
        cfn = sam_transform(sam)
    except Exception as e:  # the translator reports every problem in one exception
        print("FAIL SAM transform:")
        causes = getattr(e, "causes", None) or [e]
        for cause in causes:
            print(f"  {getattr(cause, 'message', None) or cause}")
        return 1
    print(f"ok   SAM transform: {len(cfn.get('Resources', {}))} CloudFormation resources")

    f = Failures()
    web_origin = deploy.effective(TRANSFORM_PARAMETERS, sam).get("ModjoWebOrigin")
    invariants(template, sam, cfn, f, web_origin)
    if f.items:
        print(f"FAIL invariants ({len(f.items)}):")
        for item in f.items:
            print(f"  {item}")
    else:
        print("ok   invariants: queues/DLQs/alarms, dashboard metrics, visibility timeouts, partial batch "
              "responses, table shape, IAM scope, routes and CORS, schedule, names and outputs, functions")

    paths = Failures()
    try:
        checked = check_deploy_paths(template, samconfig, sam, paths, set(f.items))
    except deploy.PlanError as e:
        paths.add("deploy.py", str(e))
        checked = []
    if paths.items:
        print(f"FAIL deploy paths ({len(paths.items)}):")
        for item in paths.items:
            print(f"  {item}")
    else:
        print(f"ok   deploy paths: {', '.join(checked)}: refused without the deployer's parameters; "
              "sam build and sam deploy get the same parameters and resolve every function to the architecture")
    return 1 if (lint or f.items or paths.items) else 0


if __name__ == "__main__":
    sys.exit(main())
