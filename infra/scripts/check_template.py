#!/usr/bin/env python3
"""Checks template.yaml offline: cfn-lint, the SAM transform, and the invariants
the design relies on.

Usage (from the repository root, with the project venv):

    .venv/bin/python infra/scripts/check_template.py [path/to/template.yaml]

1. cfn-lint (errors and warnings fail; see LINT_IGNORES for the exceptions).
2. The SAM transform (aws-sam-translator), offline: no AWS credentials, no call.
3. Invariants on the transformed CloudFormation:
   - every work queue has a RedrivePolicy to a DLQ, SSE, and its DLQ an alarm
     on ApproximateNumberOfMessagesVisible >= 1; DLQs keep messages 14 days;
   - VisibilityTimeout >= 6 x the consumer's Timeout + its batching window;
   - every SQS event source mapping reports partial batch failures;
   - the table's keys, GSIs and TTL equal shared/src/adapters/dynamo.rs;
   - IAM: no Resource "*" (unless the action cannot be scoped), no wildcard
     actions, no Scan, no AWS managed policies on function roles, and the
     per-function grants the design names (secrets, signing key, queues);
   - the OAuth callback route and the settings page's static routes are public
     (GET only), every other route has the JWT authorizer;
   - functions: rust-cargolambda builds of the workspace's function crates,
     environment variable names known to shared/src/config.rs, and never the
     test-only SALESFORCE_EXTRA_ALLOWED_ORIGINS.

Exits 0 when everything holds, 1 with one line per failure otherwise.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

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

# Resource patterns that may end in a wildcard: per-tenant secrets are created
# at runtime under this prefix (SECRET_PREFIX), one per tenant.
TENANT_SECRET_ARN = (
    "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}"
    ":secret:modjo/${Stage}/salesforce/tenants/*"
)

CALLBACK_PATH = "/integrations/salesforce/callback"
# The settings page and its files: static, no data (shared/src/api/console.rs).
CONSOLE_PATHS = {"/integrations/salesforce/console", "/integrations/salesforce/console/{asset}"}
JWT_AUTHORIZER = "ModjoJwt"

# What each function may do beyond reading/refreshing tenant credentials, by crate.
_READ_WRITE = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Query"}
EXPECTED = {
    # Syncs an admin asks for from the settings page; the Modjo user directory is
    # replaced in batches.
    "integration-api": {"send": {"SyncJobsQueue"}, "secret_admin": True, "signing_key": True,
                        "dynamodb": _READ_WRITE | {"dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"}},
    # Calls parked while the tenant needed re-authorisation are replayed on reconnect.
    "oauth-callback": {"send": {"CallEventsQueue"}, "secret_admin": True, "signing_key": True,
                       "dynamodb": _READ_WRITE},
    # Follow-up jobs, replays of parked calls, and invalid jobs to the DLQ.
    "scheduled-sync": {"send": {"SyncJobsQueue", "CallEventsQueue", "SyncJobsDlq"}, "secret_admin": False,
                       "signing_key": False,
                       "dynamodb": _READ_WRITE | {"dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"}},
    # Refused messages to the DLQ; replays of parked calls; claims are UpdateItems.
    "call-logger": {"send": {"CallEventsDlq", "CallEventsQueue"}, "secret_admin": False, "signing_key": False,
                    "dynamodb": _READ_WRITE | {"dynamodb:BatchGetItem", "dynamodb:UpdateItem"}},
    # The comment-state version is an UpdateItem.
    "comment-sync": {"send": {"CommentEventsDlq"}, "secret_admin": False, "signing_key": False,
                     "dynamodb": _READ_WRITE | {"dynamodb:BatchGetItem", "dynamodb:UpdateItem"}},
}
SECRET_ADMIN_ACTIONS = {"secretsmanager:CreateSecret", "secretsmanager:TagResource", "secretsmanager:DeleteSecret"}
SQS_CONSUME_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"}

# Environment variables set by the platform or read by libraries, not by shared::config.
ENV_NOT_IN_CONFIG = {"RUST_LOG"}
FORBIDDEN_ENV = {"SALESFORCE_EXTRA_ALLOWED_ORIGINS": "test and local-stack escape hatch (DESIGN §4)"}

# Parameter values for the offline transform (the two parameters without a default).
TRANSFORM_PARAMETERS = {"JwtIssuer": "https://auth.example.com/", "JwtAudience": "modjo-api"}


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


def sam_transform(sam: dict[str, Any]) -> dict[str, Any]:
    from samtranslator.translator.transform import transform

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
    return transform(packaged, dict(TRANSFORM_PARAMETERS), OfflineManagedPolicyLoader())


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


def check_queues(cfn: dict[str, Any], f: Failures) -> None:
    queues = resources(cfn, "AWS::SQS::Queue")
    alarms = resources(cfn, "AWS::CloudWatch::Alarm")
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
    dlqs = set(dlq_of.values())

    for name, q in queues.items():
        props = q.get("Properties", {})
        f.check(props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props, name,
                "queue is not encrypted (SqsManagedSseEnabled or KmsMasterKeyId)")
        if name in dlqs:
            f.check(int_value(props.get("MessageRetentionPeriod"), 345600) == 1209600, name,
                    "a DLQ keeps messages 14 days (MessageRetentionPeriod 1209600)")
            f.check("RedrivePolicy" not in props, name, "a DLQ has no DLQ of its own")
            continue
        if name not in dlq_of:
            f.add(name, "work queue without RedrivePolicy/DLQ (every queue has a DLQ, DESIGN §7)")
        else:
            src = int_value(props.get("MessageRetentionPeriod"), 345600)
            dst = int_value(queues[dlq_of[name]].get("Properties", {}).get("MessageRetentionPeriod"), 345600)
            f.check(dst > src, name, f"DLQ retention ({dst}s) must exceed the queue's ({src}s)")

    for dlq in sorted(dlqs):
        found = False
        for alarm in alarms.values():
            p = alarm.get("Properties", {})
            dims = {d.get("Name"): d.get("Value") for d in as_list(p.get("Dimensions"))}
            if (
                p.get("Namespace") == "AWS/SQS"
                and p.get("MetricName") == "ApproximateNumberOfMessagesVisible"
                and getatt_target(dims.get("QueueName"), "QueueName") == dlq
            ):
                op, threshold = p.get("ComparisonOperator"), float(p.get("Threshold", -1))
                fires_at_one = (op == "GreaterThanOrEqualToThreshold" and threshold <= 1) or (
                    op == "GreaterThanThreshold" and threshold < 1
                )
                f.check(fires_at_one, dlq, "DLQ alarm must fire at one visible message")
                found = True
        f.check(found, dlq, "DLQ without a CloudWatch alarm on ApproximateNumberOfMessagesVisible")

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
        if name in dlqs:
            f.check(name not in consumed, name, "a DLQ is for inspection and redrive, not consumed by a function")
        else:
            f.check(len(consumed.get(name, [])) == 1, name,
                    f"work queue must have exactly one consumer, has {len(consumed.get(name, []))}")


def dynamo_constants(f: Failures) -> dict[str, str] | None:
    path = ROOT / "shared/src/adapters/dynamo.rs"
    try:
        src = path.read_text()
    except OSError as e:
        f.add(str(path), f"cannot read: {e}")
        return None
    names = {"PK", "SK", "GSI1", "GSI1_PK", "GSI1_SK", "GSI2", "GSI2_PK", "GSI2_SK", "TTL"}
    consts = dict(re.findall(r'pub const (' + "|".join(sorted(names)) + r'): &str = "([^"]+)";', src))
    missing = names - consts.keys()
    if missing:
        f.add(str(path), f"constants {sorted(missing)} not found; update check_template.py with the adapter")
        return None
    body = src[src.find("pub async fn create_table"):]
    for token in ("BillingMode::PayPerRequest", "ProjectionType::All", "ScalarAttributeType::S"):
        f.check(token in body, str(path), f"create_table no longer uses {token}; update template.yaml and this check")
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
    f.check(attrs == expect_attrs, name, f"AttributeDefinitions {attrs} != {expect_attrs} (dynamo.rs)")
    keys = [(k.get("AttributeName"), k.get("KeyType")) for k in as_list(p.get("KeySchema"))]
    f.check(keys == [(c["PK"], "HASH"), (c["SK"], "RANGE")], name, f"KeySchema {keys} != pk HASH, sk RANGE")
    gsis = {g.get("IndexName"): g for g in as_list(p.get("GlobalSecondaryIndexes"))}
    expected_gsis = {c["GSI1"]: ("GSI1_PK", "GSI1_SK"), c["GSI2"]: ("GSI2_PK", "GSI2_SK")}
    f.check(set(gsis) == set(expected_gsis), name, f"GSIs {sorted(map(str, gsis))} != {sorted(expected_gsis)} (dynamo.rs)")
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
        for a in SECRET_ADMIN_ACTIONS:
            has = TENANT_SECRET_ARN in grants.get(a, set())
            f.check(has == expected["secret_admin"], where,
                    f"{a} {'missing' if expected['secret_admin'] else 'granted'} (only the connect/disconnect paths create and delete secrets)")
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


def check_routes(cfn: dict[str, Any], f: Failures) -> None:
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
    seen_callback = False
    seen_console: set[str] = set()
    routes = 0
    for path, methods in body.get("paths", {}).items():
        for method, op in methods.items():
            if not isinstance(op, dict) or "x-amazon-apigateway-integration" not in op:
                continue
            routes += 1
            route = f"{method.upper()} {path}"
            names = {k for s in as_list(op.get("security")) for k in s}
            if path == CALLBACK_PATH:
                seen_callback = True
                f.check(method == "get", route, "the callback route is GET only")
                f.check(names <= {"NONE"}, route, f"the OAuth callback must be public, has {sorted(names)}")
            elif path in CONSOLE_PATHS:
                seen_console.add(path)
                f.check(method == "get", route, "the settings page's routes are GET only")
                f.check(names <= {"NONE"}, route, f"the settings page must load without a JWT, has {sorted(names)}")
            else:
                f.check(names == {JWT_AUTHORIZER}, route, f"must require the {JWT_AUTHORIZER} authorizer, has {sorted(names)}")
            f.check(path.startswith("/integrations/salesforce/"), route, "routes live under /integrations/salesforce/")
    f.check(seen_callback, name, f"no GET {CALLBACK_PATH} route")
    f.check(seen_console == CONSOLE_PATHS, name, f"missing settings page routes {sorted(CONSOLE_PATHS - seen_console)}")
    f.check(routes >= 2, name, "expected the admin routes and the callback route")


def check_schedule(cfn: dict[str, Any], crate_of: dict[str, str], f: Failures) -> None:
    sync = [n for n, c in crate_of.items() if c == "scheduled-sync"]
    rules = [
        r for r in resources(cfn, "AWS::Events::Rule").values()
        if any(getatt_target(t.get("Arn"), "Arn") in sync for t in as_list(r["Properties"].get("Targets")))
    ]
    f.check(any(r["Properties"].get("ScheduleExpression") == "rate(15 minutes)" for r in rules), "scheduled-sync",
            "no EventBridge rule rate(15 minutes) targeting scheduled-sync")


# ------------------------------------------------------------------ main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("template", nargs="?", default=str(ROOT / "template.yaml"), help="default: template.yaml")
    args = ap.parse_args()
    template = Path(args.template).resolve()
    print(f"checking {template}")

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
    try:
        check_queues(cfn, f)
        check_table(cfn, f)
        crate_of = check_functions(sam, cfn, f)
        check_iam(cfn, crate_of, f)
        check_routes(cfn, f)
        check_schedule(cfn, crate_of, f)
    except Exception as e:  # a shape the checks do not expect is a failure, not a pass
        f.add("check_template.py", f"unexpected template shape: {type(e).__name__}: {e}")
    if f.items:
        print(f"FAIL invariants ({len(f.items)}):")
        for item in f.items:
            print(f"  {item}")
    else:
        print("ok   invariants: queues/DLQs/alarms, visibility timeouts, partial batch responses, "
              "table shape, IAM scope, routes, schedule, functions")
    return 1 if (lint or f.items) else 0


if __name__ == "__main__":
    sys.exit(main())
