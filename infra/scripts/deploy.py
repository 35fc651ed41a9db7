#!/usr/bin/env python3
"""Builds and deploys the SAM stack so that `sam build` and `sam deploy` agree.

Run through infra/scripts/deploy.sh (README, Deploy), which installs the pinned
SAM CLI and cargo-lambda first.

Why a wrapper: `sam build` compiles the functions for the template's
`Architecture`, and `sam deploy` tells Lambda which instruction set to run them
on. Each command reads its own parameters, and `--parameter-overrides` on the
command line replaces samconfig's whole list, so a one-off switch given to one
command either builds binaries the other deploys as something else (exec format
error on every invocation) or drops the other parameters. This script computes
the parameters once, from samconfig.toml ([<env>.global.parameters], then
[<env>.deploy.parameters], which `--guided` writes), the command line
(KEY=VALUE) and `--architecture`, checks them against the template (allowed
values, patterns, required parameters, the template's Rules) before anything
slow happens, passes the same list to both commands, and checks that the built
binaries are of that architecture before deploying them.

    deploy.sh [--config-env ENV] [--architecture arm64|x86_64] [--guided] [KEY=VALUE ...]
    deploy.sh --plan ...        the commands it would run, as JSON (no AWS, no build)
    deploy.sh --outputs-env     `export` lines of a deployed stack for MODJO_AWS=real
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info < (3, 11):
    sys.exit("deploy.py needs Python 3.11 or later (tomllib)")
import tomllib  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SAMCONFIG = ROOT / "samconfig.toml"
TEMPLATE = ROOT / "template.yaml"
ARCHITECTURES = ("arm64", "x86_64")

# ELF e_machine of each Lambda architecture.
ELF_MACHINE = {0x3E: "x86_64", 0xB7: "arm64"}

# The stack outputs that name what the functions' environment variables name:
# the README's `MODJO_AWS=real` mode reads these variables.
OUTPUT_ENV = {
    "TABLE_NAME": "TableName",
    "SECRET_PREFIX": "SecretPrefix",
    "STATE_SIGNING_SECRET_ID": "StateSigningSecretArn",
    "CALL_EVENTS_QUEUE_URL": "CallEventsQueueUrl",
    "CALL_EVENTS_DLQ_URL": "CallEventsDlqUrl",
    "COMMENT_EVENTS_QUEUE_URL": "CommentEventsQueueUrl",
    "COMMENT_EVENTS_DLQ_URL": "CommentEventsDlqUrl",
    "SYNC_JOBS_QUEUE_URL": "SyncJobsQueueUrl",
}


class PlanError(Exception):
    """A reason not to build or deploy; the message says what to do."""


# ------------------------------------------------------------------ samconfig


def load_samconfig(path: Path = SAMCONFIG) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise PlanError(f"{path}: {e}") from e


def parse_overrides(value: Any, where: str) -> dict[str, str]:
    """SAM's parameter_overrides: "K=V K2='V 2'", a list of "K=V", or the
    "ParameterKey=K,ParameterValue=V" form; later keys win."""
    if value is None:
        return {}
    tokens = value if isinstance(value, list) else shlex.split(str(value))
    out: dict[str, str] = {}
    for token in tokens:
        m = re.fullmatch(r"ParameterKey=([^,]+),ParameterValue=(.*)", token) or re.fullmatch(
            r"([A-Za-z0-9]+)=(.*)", token
        )
        if not m:
            raise PlanError(f"{where}: cannot read parameter override {token!r} (expected Key=Value)")
        out[m.group(1)] = m.group(2)
    return out


def section(config: dict[str, Any], env: str, command: str) -> dict[str, Any]:
    return config.get(env, {}).get(command, {}).get("parameters", {})


def config_parameters(config: dict[str, Any], env: str) -> dict[str, str]:
    """What `sam deploy --config-env env` reads: global, then deploy (which wins)."""
    params = parse_overrides(section(config, env, "global").get("parameter_overrides"), f"[{env}.global]")
    params.update(parse_overrides(section(config, env, "deploy").get("parameter_overrides"), f"[{env}.deploy]"))
    return params


def stack_name(config: dict[str, Any], env: str) -> str:
    for command in ("deploy", "global"):
        name = section(config, env, command).get("stack_name")
        if name:
            return str(name)
    raise PlanError(f"samconfig.toml: no stack_name for config env {env!r}")


# ------------------------------------------------------------------ template


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    from samtranslator.yaml_helper import yaml_parse

    return yaml_parse(path.read_text())


def problems_with(params: dict[str, str], template: dict[str, Any]) -> list[str]:
    """Values CloudFormation would refuse: unknown names, AllowedValues,
    AllowedPattern, MinLength, and whitespace (SAM splits overrides on it)."""
    declared = template.get("Parameters", {})
    out = []
    for name, value in params.items():
        spec = declared.get(name)
        if spec is None:
            out.append(f"{name}: not a parameter of template.yaml")
            continue
        if re.search(r"\s", value):
            out.append(f"{name}: values cannot contain whitespace")
        allowed = [str(v) for v in spec.get("AllowedValues", [])]
        if allowed and value not in allowed:
            out.append(f"{name}={value}: expected one of {', '.join(allowed)}")
        pattern = spec.get("AllowedPattern")
        if pattern and not re.fullmatch(pattern, value):
            why = spec.get("ConstraintDescription") or f"does not match {pattern}"
            out.append(f"{name}={value}: {why}")
        if len(value) < int(spec.get("MinLength", 0)):
            out.append(f"{name}: at least {spec['MinLength']} characters")
    return out


def missing_required(params: dict[str, str], template: dict[str, Any]) -> list[str]:
    return [n for n, spec in template.get("Parameters", {}).items() if "Default" not in spec and n not in params]


def effective(params: dict[str, str], template: dict[str, Any]) -> dict[str, str]:
    """Parameter values as CloudFormation sees them: given, else the default."""
    values = {n: str(s["Default"]) for n, s in template.get("Parameters", {}).items() if "Default" in s}
    values.update(params)
    return values


def evaluate(expr: Any, values: dict[str, str]) -> Any:
    """The intrinsic functions a template Rule may use on parameters."""
    if isinstance(expr, (str, int, float, bool)):
        return str(expr) if not isinstance(expr, bool) else expr
    if isinstance(expr, list):
        return [evaluate(e, values) for e in expr]
    if isinstance(expr, dict) and len(expr) == 1:
        (fn, arg), = expr.items()
        if fn == "Ref":
            if arg not in values:
                raise KeyError(arg)
            return values[arg]
        args = evaluate(arg, values)
        if fn == "Fn::Equals":
            return args[0] == args[1]
        if fn == "Fn::Not":
            return not args[0]
        if fn == "Fn::And":
            return all(args)
        if fn == "Fn::Or":
            return any(args)
        if fn == "Fn::Contains":
            return args[1] in args[0]
    raise PlanError(f"template Rules: unsupported expression {expr!r}; teach deploy.py to evaluate it")


def failed_rules(params: dict[str, str], template: dict[str, Any]) -> list[str]:
    """The template's Rules that CloudFormation would refuse these values for.
    Rules naming a parameter without a value are left to CloudFormation."""
    values = effective(params, template)
    out = []
    for name, rule in template.get("Rules", {}).items():
        try:
            if "RuleCondition" in rule and not evaluate(rule["RuleCondition"], values):
                continue
            for assertion in rule.get("Assertions", []):
                if not evaluate(assertion["Assert"], values):
                    out.append(f"{name}: {' '.join(str(assertion.get('AssertDescription', 'assertion failed')).split())}")
        except KeyError:
            continue
    return out


# ------------------------------------------------------------------ plan


@dataclass
class Plan:
    config_env: str
    stack_name: str
    architecture: str
    parameters: dict[str, str]
    build: list[str]
    deploy: list[str]
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "configEnv": self.config_env,
            "stackName": self.stack_name,
            "architecture": self.architecture,
            "parameters": self.parameters,
            "missing": self.missing,
            "problems": self.problems,
            "build": self.build,
            "deploy": self.deploy,
        }


def overrides_argv(params: dict[str, str], template: dict[str, Any]) -> list[str]:
    order = list(template.get("Parameters", {}))
    return [f"{k}={params[k]}" for k in sorted(params, key=lambda k: (order.index(k) if k in order else len(order), k))]


def plan(
    config_env: str = "default",
    architecture: str | None = None,
    extra: dict[str, str] | None = None,
    guided: bool = False,
    config: dict[str, Any] | None = None,
    template: dict[str, Any] | None = None,
    sam: str = "sam",
) -> Plan:
    config = load_samconfig() if config is None else config
    template = load_template() if template is None else template
    if config_env not in config:
        raise PlanError(f"samconfig.toml has no config env {config_env!r} (it has {', '.join(sorted(config))})")
    params = config_parameters(config, config_env)
    params.update(extra or {})
    if architecture is not None:
        if architecture not in ARCHITECTURES:
            raise PlanError(f"--architecture must be one of {', '.join(ARCHITECTURES)}")
        params["Architecture"] = architecture
    arch = effective(params, template).get("Architecture", "")
    # Always explicit, so that both commands name it even where it is the default.
    params["Architecture"] = arch
    problems = problems_with(params, template)
    missing = missing_required(params, template)
    if not guided:
        problems += [f"{n}: required, and it has no value (give {n}=..., or run with --guided)" for n in missing]
        problems += [f"rule {p}" for p in failed_rules(params, template)]
    overrides = overrides_argv(params, template)
    common = ["--config-env", config_env, "--parameter-overrides", *overrides]
    build = [sam, "build", *common]
    deploy = [sam, "deploy", *common] + (["--guided"] if guided else [])
    return Plan(config_env, stack_name(config, config_env), arch, params, build, deploy, missing, problems)


# ------------------------------------------------------------------ build checks


def elf_architecture(path: Path) -> str | None:
    try:
        head = path.read_bytes()[:20]
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return ELF_MACHINE.get(int.from_bytes(head[18:20], "little"))


def built_binaries(build_dir: Path, template: dict[str, Any]) -> dict[str, Path]:
    return {
        name: build_dir / name / "bootstrap"
        for name, res in template.get("Resources", {}).items()
        if res.get("Type") == "AWS::Serverless::Function"
    }


def check_built(architecture: str, template: dict[str, Any], build_dir: Path = ROOT / ".aws-sam" / "build") -> list[str]:
    out = []
    for name, path in built_binaries(build_dir, template).items():
        found = elf_architecture(path)
        if found != architecture:
            out.append(f"{path}: built for {found or 'nothing readable'}, the stack declares {architecture}")
    return out


# ------------------------------------------------------------------ main


def run(cmd: list[str]) -> None:
    print("+ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    rc = subprocess.run(cmd, cwd=ROOT).returncode
    if rc != 0:
        raise PlanError(f"{cmd[0]} {cmd[1]} failed (exit {rc})")


def sam_executable() -> str:
    local = Path(sys.executable).with_name("sam")
    return str(local) if local.exists() else "sam"


def outputs_env(config_env: str, sam: str) -> list[str]:
    name = stack_name(load_samconfig(), config_env)
    proc = subprocess.run(
        [sam, "list", "stack-outputs", "--config-env", config_env, "--stack-name", name, "--output", "json"],
        cwd=ROOT, capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise PlanError(f"sam list stack-outputs --stack-name {name}: {proc.stderr.strip() or proc.stdout.strip()}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in json.loads(proc.stdout)}
    lines = []
    for var, key in OUTPUT_ENV.items():
        if key not in outputs:
            raise PlanError(f"stack {name} has no output {key} (deployed from an older template?)")
        lines.append(f"export {var}={shlex.quote(outputs[key])}")
    return lines


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        description="Build and deploy the stack with one set of parameters (README, Deploy).",
        epilog="KEY=VALUE arguments override samconfig.toml's parameters for this run.",
    )
    ap.add_argument("--config-env", default="default", help="samconfig.toml environment (default: default)")
    ap.add_argument("--architecture", choices=ARCHITECTURES, help="Lambda instruction set, for build and deploy alike")
    ap.add_argument("--guided", action="store_true", help="let SAM ask every parameter and save the answers")
    ap.add_argument("--plan", action="store_true", help="print the commands as JSON and stop")
    ap.add_argument("--outputs-env", action="store_true", help="print export lines for MODJO_AWS=real and stop")
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    sam = sam_executable()
    try:
        if args.outputs_env:
            print("\n".join(outputs_env(args.config_env, sam)))
            return 0
        extra = parse_overrides(args.overrides, "command line")
        p = plan(args.config_env, args.architecture, extra, args.guided, sam=sam)
        if args.plan:
            print(json.dumps(p.as_json(), indent=2))
            return 1 if p.problems else 0
        if p.problems:
            raise PlanError("not building:\n  " + "\n  ".join(p.problems))
        template = load_template()
        print(f"== {p.stack_name} ({p.config_env}): {p.architecture}", flush=True)
        run(p.build)
        bad = check_built(p.architecture, template)
        if bad:
            raise PlanError("not deploying:\n  " + "\n  ".join(bad))
        if args.guided:
            # SAM asks every parameter (Architecture included) and saves the
            # answers; the change set is only created. Then plan again from what
            # was saved, so that the binaries deployed are built for what was chosen.
            run([*p.deploy, "--no-execute-changeset"])
            p = plan(args.config_env, sam=sam)
            if p.problems:
                raise PlanError("the saved configuration is incomplete:\n  " + "\n  ".join(p.problems))
            if check_built(p.architecture, template):
                print(f"== Architecture is now {p.architecture}: building again", flush=True)
                run(p.build)
            bad = check_built(p.architecture, template)
            if bad:
                raise PlanError("not deploying:\n  " + "\n  ".join(bad))
        run(p.deploy)
        return 0
    except PlanError as e:
        print(f"deploy: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
