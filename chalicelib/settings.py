"""Run-time settings read from the environment, once, when first needed (never at import time)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from chalicelib import resources

# How often the amazon_returns schedule reads each Amazon store's returns report, in hours. Its one home: the
# @schedule decorator takes it, and from there the CDK stack's EventBridge Scheduler schedule and the local
# stack's scheduler (both read the app's schedules). Amazon builds the report in minutes; returns reach it
# late, which the schedule's overlap window covers, so a few runs a day suffice.
AMAZON_RETURNS_EVERY_HOURS = 6


# How often the redact_personal_data schedule runs, in minutes (with its per-lane bound, the pace it keeps).
# Its retention periods are the personal_data_retention setting (domain/runtime_settings.py).
REDACT_PERSONAL_DATA_EVERY_MINUTES = 15

# Seconds a function keeps the runtime settings it read before asking the store again (Powertools'
# parameters cache): a policy changed through PUT /api/settings/{name} is in force everywhere within this.
SETTINGS_MAX_AGE_SECONDS = 60


def settings_path(stage: str) -> str:
    """Where the stage's runtime settings live in SSM Parameter Store: one parameter per setting below it."""
    return f"/{resources.APP_NAME}/{stage}/settings"


class ConfigurationError(RuntimeError):
    """A required setting is missing: the deployment (CDK or local stack) did not provide it."""


@dataclass(frozen=True)
class Settings:
    stage: str
    region: str
    table_name: str
    queue_urls: Mapping[str, str]
    dlq_urls: Mapping[str, str]
    state_machine_arns: Mapping[str, str]
    operator_token: str | None
    operator_token_secret_id: str | None
    aws_endpoint: str | None
    local: bool
    # One base-URL override per external system (DESIGN §3); None means the real service.
    amazon_spapi_endpoint: str | None = None
    amazon_lwa_endpoint: str | None = None
    stripe_api_base: str | None = None
    carrier_api_base: str | None = None
    shopify_api_base: str | None = None
    woocommerce_api_base: str | None = None
    # HUB_ALLOW_PRIVATE_HOSTS=1: the hub may call loopback and private hosts (store URLs, API bases). Set only
    # by the local stack (`local/`), whose simulators listen on 127.0.0.1; unset in AWS: public hosts only.
    allow_private_hosts: bool = False
    # HUB_SETTINGS_PATH: the runtime settings' parameter path (settings_path(stage) when unset).
    settings_path: str = ""
    # HUB_LOCAL_SETTINGS_MAX_AGE: the local stack's shorter cache of runtime settings.
    settings_max_age: int = SETTINGS_MAX_AGE_SECONDS

    def queue_url(self, key: str) -> str:
        try:
            return self.queue_urls[key]
        except KeyError:
            raise ConfigurationError(f"{resources.queue(key).env_var} is not set") from None

    def state_machine_arn(self, key: str) -> str:
        try:
            return self.state_machine_arns[key]
        except KeyError:
            spec = resources.state_machine(key)
            raise ConfigurationError(f"{spec.env_var} is not set") from None


def from_environ(environ: Mapping[str, str]) -> Settings:
    queue_urls = {q.key: environ[q.env_var] for q in resources.QUEUES if q.env_var in environ}
    dlq_urls = {q.key: environ[q.dlq_env_var] for q in resources.QUEUES if q.dlq_env_var in environ}
    machines = {m.key: environ[m.env_var] for m in resources.STATE_MACHINES if m.env_var in environ}
    stage = environ.get("HUB_STAGE", "dev")
    return Settings(
        stage=stage,
        region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        table_name=environ.get(resources.TABLE.env_var, resources.TABLE.name),
        queue_urls=queue_urls,
        dlq_urls=dlq_urls,
        state_machine_arns=machines,
        operator_token=environ.get("HUB_OPERATOR_TOKEN") or None,
        operator_token_secret_id=environ.get(resources.OPERATOR_TOKEN_SECRET.env_var) or None,
        aws_endpoint=environ.get("AWS_ENDPOINT_URL") or None,
        local=environ.get("HUB_LOCAL") == "1",
        amazon_spapi_endpoint=environ.get("HUB_AMAZON_SPAPI_ENDPOINT") or None,
        amazon_lwa_endpoint=environ.get("HUB_AMAZON_LWA_ENDPOINT") or None,
        stripe_api_base=environ.get("HUB_STRIPE_API_BASE") or None,
        carrier_api_base=environ.get("HUB_CARRIER_API_BASE") or None,
        shopify_api_base=environ.get("HUB_SHOPIFY_API_BASE") or None,
        woocommerce_api_base=environ.get("HUB_WOOCOMMERCE_API_BASE") or None,
        allow_private_hosts=environ.get("HUB_ALLOW_PRIVATE_HOSTS") == "1",
        settings_path=environ.get("HUB_SETTINGS_PATH") or settings_path(stage),
        settings_max_age=_int_setting(environ, "HUB_LOCAL_SETTINGS_MAX_AGE", SETTINGS_MAX_AGE_SECONDS),
    )


def _int_setting(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, not {raw!r}") from None
    if value < 1:
        raise ConfigurationError(f"{name} must be at least 1")
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return from_environ(os.environ)


# ------------------------------------------------------------------------------- where each setting lives

# The homes a setting can have, and who changes a setting there.
HOMES = {
    "stack": "the deployment: the CDK stack (infra/) in AWS, the local stack (local/) on one machine",
    "lambda": "the Lambda service itself (the local stack plays it)",
    "connection": "an operator, with the connection it belongs to: POST /api/connections",
    "config": "an operator, without a redeploy: PUT /api/settings/{name} (SSM Parameter Store)",
    "local": "the local stack only (python -m local); unset in AWS, where the default is the right one",
}


@dataclass(frozen=True)
class SettingHome:
    name: str  # an environment variable; a runtime setting's name (config); `<channel>.<field>` (connection)
    home: str
    meaning: str


def _stack_resources() -> tuple[SettingHome, ...]:
    found = [SettingHome(resources.TABLE.env_var, "stack", "the single DynamoDB table's name")]
    for queue in resources.QUEUES:
        found.append(SettingHome(queue.env_var, "stack", f"the {queue.key} queue's URL"))
        found.append(SettingHome(queue.dlq_env_var, "stack", f"the {queue.key} queue's DLQ URL"))
    for machine in resources.STATE_MACHINES:
        found.append(SettingHome(machine.env_var, "stack", f"the {machine.key} state machine's ARN"))
    for secret in resources.SECRETS:
        found.append(SettingHome(secret.env_var, "stack", f"the {secret.key} secret's ARN"))
    return tuple(found)


# Every setting the app reads, with its one home (tests/unit/test_settings_homes.py derives what the code
# reads and fails on a setting missing here; tests/infra checks the stack provides every `stack` one).
SETTINGS: tuple[SettingHome, ...] = (
    SettingHome("HUB_STAGE", "stack", "the stage (dev, prod, ...): names, secret prefixes, settings path"),
    SettingHome("HUB_SETTINGS_PATH", "stack", "the SSM path of the stage's runtime settings"),
    *_stack_resources(),
    SettingHome("AWS_REGION", "lambda", "the function's region"),
    SettingHome("AWS_DEFAULT_REGION", "lambda", "the function's region (read when AWS_REGION is not set)"),
    SettingHome("fraud_policy", "config", "fraud thresholds, weights, high-value amounts, velocity limits"),
    SettingHome("fulfilment_policy", "config", "warehouses (3PL, countries, SKUs, promise), silence limit"),
    SettingHome("returns_policy", "config", "return window, fees, credit bonus, kits, per-store overrides"),
    SettingHome("payment_recovery", "config", "wait for a new payment method (seconds) and attempts"),
    SettingHome("stuck_after", "config", "the status page's per-status 'no progress for' limits"),
    SettingHome("personal_data_retention", "config", "per-channel retention of closed orders' personal data"),
    SettingHome("3pl.api_base", "connection", "a 3PL's API base URL (https; loopback only locally)"),
    SettingHome("3pl.api_key", "connection", "a 3PL's API key and webhook secret (Secrets Manager)"),
    SettingHome("shopify.access_token", "connection", "each store's credentials (Secrets Manager)"),
    SettingHome("stripe.secret_key", "connection", "the Stripe account's key and webhook secret"),
    SettingHome("easypost.api_key", "connection", "the EasyPost account's key and webhook secret"),
    SettingHome("HUB_LOCAL", "local", "1: the local stack (health shows its endpoints and queues)"),
    SettingHome("AWS_ENDPOINT_URL", "local", "the local AWS endpoint (moto behind the gateway)"),
    SettingHome("HUB_OPERATOR_TOKEN", "local", "the operator token (AWS: the operator-token secret)"),
    SettingHome("HUB_ALLOW_PRIVATE_HOSTS", "local", "1: the hub may call loopback hosts (the simulators)"),
    SettingHome("HUB_LOCAL_SETTINGS_MAX_AGE", "local", "seconds the runtime settings are cached (AWS: 60)"),
    SettingHome("HUB_SHOPIFY_API_BASE", "local", "Shopify Admin API base (AWS: each shop's own domain)"),
    SettingHome("HUB_WOOCOMMERCE_API_BASE", "local", "WooCommerce REST base (AWS: each store's site URL)"),
    SettingHome("HUB_AMAZON_SPAPI_ENDPOINT", "local", "SP-API endpoint (AWS: the marketplace's region)"),
    SettingHome("HUB_AMAZON_LWA_ENDPOINT", "local", "Login with Amazon token URL (AWS: api.amazon.com)"),
    SettingHome("HUB_STRIPE_API_BASE", "local", "Stripe API base (AWS: api.stripe.com)"),
    SettingHome("HUB_CARRIER_API_BASE", "local", "EasyPost API base (AWS: api.easypost.com)"),
)


def home_of(name: str) -> SettingHome | None:
    return next((s for s in SETTINGS if s.name == name), None)
