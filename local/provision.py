"""Creates every resource of the specification in the local AWS and returns the functions' environment."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib import resources

ACCOUNT_ID = "123456789012"
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Provisioned:
    environment: dict[str, str]
    queue_urls: dict[str, str]  # physical queue name → URL, DLQs included
    state_machine_arns: dict[str, str]


def function_arn(region: str, app_name: str, stage: str, function: str) -> str:
    return f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{app_name}-{stage}-{function}"


def _exists(exc: Exception, *codes: str) -> bool:
    """A create call refused because the resource is there already (a restart against a surviving moto)."""
    return getattr(exc, "response", {}).get("Error", {}).get("Code") in codes


def create_table(ddb: Any, spec: resources.TableSpec) -> None:
    try:
        _create_table(ddb, spec)
    except Exception as exc:
        if not _exists(exc, "ResourceInUseException"):
            raise


def _create_table(ddb: Any, spec: resources.TableSpec) -> None:
    attributes = {spec.partition_key, spec.sort_key}
    for index in spec.indexes:
        attributes |= {index.partition_key, index.sort_key}
    ddb.create_table(
        TableName=spec.name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in sorted(attributes)],
        KeySchema=[
            {"AttributeName": spec.partition_key, "KeyType": "HASH"},
            {"AttributeName": spec.sort_key, "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": index.name,
                "KeySchema": [
                    {"AttributeName": index.partition_key, "KeyType": "HASH"},
                    {"AttributeName": index.sort_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index in spec.indexes
        ],
    )
    ddb.update_time_to_live(
        TableName=spec.name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
    )


def create_queue(sqs: Any, spec: resources.QueueSpec, visibility_override: int | None) -> tuple[str, str]:
    """The queue and its DLQ, wired by a redrive policy. Returns (queue URL, DLQ URL)."""
    fifo = {"FifoQueue": "true"} if spec.fifo else {}
    dlq_url = sqs.create_queue(
        QueueName=spec.dlq_name,
        Attributes={**fifo, "MessageRetentionPeriod": str(resources.DLQ_RETENTION_SECONDS)},
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    attributes = {
        **fifo,
        "VisibilityTimeout": str(visibility_override or spec.visibility_timeout_seconds),
        "MessageRetentionPeriod": str(spec.retention_seconds),
        "RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": spec.max_receive_count}
        ),
    }
    if spec.fifo and spec.content_based_deduplication:
        attributes["ContentBasedDeduplication"] = "true"
    url = sqs.create_queue(QueueName=spec.name, Attributes=attributes)["QueueUrl"]
    return url, dlq_url


def resolve_substitutions(
    spec: resources.StateMachineSpec,
    *,
    region: str,
    stage: str,
    queue_urls: dict[str, str],
) -> dict[str, str]:
    values: dict[str, str] = {}
    for placeholder, sub in spec.substitutions.items():
        if sub.kind == "function":
            values[placeholder] = function_arn(region, resources.APP_NAME, stage, sub.target)
        elif sub.kind == "queue_url":
            values[placeholder] = queue_urls[resources.queue(sub.target).name]
        elif sub.kind == "queue_arn":
            name = resources.queue(sub.target).name
            values[placeholder] = f"arn:aws:sqs:{region}:{ACCOUNT_ID}:{name}"
        elif sub.kind == "table_name":
            values[placeholder] = resources.TABLE.name
        elif sub.kind == "table_arn":
            values[placeholder] = f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{resources.TABLE.name}"
        else:
            raise ValueError(f"unknown substitution kind {sub.kind!r} for {placeholder}")
    return values


def create_state_machine(sfn: Any, spec: resources.StateMachineSpec, values: dict[str, str]) -> str:
    definition = resources.substitute(spec.definition_path(ROOT).read_text(), values)
    for machine in sfn.list_state_machines()["stateMachines"]:
        if machine["name"] == spec.name:  # a restart against a surviving moto: executions go on
            sfn.update_state_machine(stateMachineArn=machine["stateMachineArn"], definition=definition)
            return str(machine["stateMachineArn"])
    response = sfn.create_state_machine(
        name=spec.name,
        definition=definition,
        roleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/{resources.APP_NAME}-local-states",
        type="STANDARD",
    )
    return str(response["stateMachineArn"])


def provision(
    clients: Any,
    *,
    region: str,
    stage: str,
    operator_token: str,
    visibility_override: int | None = None,
) -> Provisioned:
    """Create the table, queues, secrets and state machines; `clients(service)` gives boto3 clients."""
    env: dict[str, str] = {resources.TABLE.env_var: resources.TABLE.name}
    create_table(clients("dynamodb"), resources.TABLE)

    queue_urls: dict[str, str] = {}
    for queue in resources.QUEUES:
        url, dlq_url = create_queue(clients("sqs"), queue, visibility_override)
        queue_urls[queue.name], queue_urls[queue.dlq_name] = url, dlq_url
        env[queue.env_var], env[queue.dlq_env_var] = url, dlq_url

    secrets = clients("secretsmanager")
    for secret in resources.SECRETS:
        value = operator_token if secret is resources.OPERATOR_TOKEN_SECRET else ""
        try:
            arn = secrets.create_secret(Name=secret.name, Description=secret.description, SecretString=value)[
                "ARN"
            ]
        except Exception as exc:
            if not _exists(exc, "ResourceExistsException"):
                raise
            # A restart against a surviving moto: the secret keeps what was stored in it (connections).
            arn = secrets.describe_secret(SecretId=secret.name)["ARN"]
        env[secret.env_var] = arn

    machine_arns: dict[str, str] = {}
    for machine in resources.STATE_MACHINES:
        values = resolve_substitutions(machine, region=region, stage=stage, queue_urls=queue_urls)
        arn = create_state_machine(clients("stepfunctions"), machine, values)
        machine_arns[machine.name] = arn
        env[machine.env_var] = arn
    return Provisioned(environment=env, queue_urls=queue_urls, state_machine_arns=machine_arns)


# The local stack's own option: environment variables that seed the runtime settings store when it provisions
# it (tests, the demo and bench/ pass policies this way). Lambda code never reads them: it reads the store.
SETTING_SEEDS = {
    "HUB_FRAUD_POLICY": "fraud_policy",
    "HUB_FULFILMENT_POLICY": "fulfilment_policy",
    "HUB_RETURNS_POLICY": "returns_policy",
    "HUB_STUCK_AFTER": "stuck_after",
    "HUB_PERSONAL_DATA_RETENTION": "personal_data_retention",
}
PAYMENT_SEEDS = {
    "HUB_PAYMENT_RECOVERY_SECONDS": "recovery_seconds",
    "HUB_PAYMENT_MAX_ATTEMPTS": "max_attempts",
}


def setting_seeds(environ: dict[str, str]) -> dict[str, Any]:
    """The seed values the environment gives (JSON for the policies, text for the two specs, whole numbers
    for payment recovery), each validated by its setting's schema; ValueError naming the variable."""
    from chalicelib.domain.runtime_settings import PAYMENT_RECOVERY, RUNTIME_SETTINGS, SettingRefused

    seeds: dict[str, Any] = {}
    for variable, name in SETTING_SEEDS.items():
        raw = environ.get(variable)
        if not raw:
            continue
        setting = RUNTIME_SETTINGS[name]
        try:
            value = raw if isinstance(setting.default, str) else json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"{variable} is not JSON: {exc}") from None
        seeds[name] = value
    payment = {key: environ[v] for v, key in PAYMENT_SEEDS.items() if environ.get(v)}
    if payment:
        try:
            numbers = {k: int(v) for k, v in payment.items()}
            seeds[PAYMENT_RECOVERY.name] = {**PAYMENT_RECOVERY.default, **numbers}
        except ValueError:
            raise ValueError(f"{', '.join(PAYMENT_SEEDS)} are whole numbers") from None
    for name, value in seeds.items():
        try:
            RUNTIME_SETTINGS[name].parse(value)
        except SettingRefused as exc:
            raise ValueError(f"seed of {exc}") from None
    return seeds


def provision_settings(ssm: Any, path: str, seeds: dict[str, Any]) -> None:
    """One parameter per runtime setting under `path`, as the CDK stack makes them: the seed, else the
    validated default. A restart against a surviving moto keeps what is stored (operators' changes)."""
    from chalicelib.domain.runtime_settings import RUNTIME_SETTINGS

    for name, setting in RUNTIME_SETTINGS.items():
        value = seeds.get(name, setting.default)
        setting.parse(value)
        try:
            ssm.put_parameter(
                Name=f"{path}/{name}",
                Value=json.dumps(value, separators=(",", ":"), sort_keys=True),
                Type="String",
                Description=setting.meaning[:1024],
                Overwrite=False,
            )
        except Exception as exc:
            if not _exists(exc, "ParameterAlreadyExists"):
                raise
