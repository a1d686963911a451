"""Run-time settings read from the environment, once, when first needed (never at import time)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from chalicelib import resources

# How often the amazon_returns schedule reads each Amazon store's returns report, in hours. Its one home: the
# @schedule decorator takes it, and from there the CDK stack's EventBridge Scheduler schedule and the local
# stack's scheduler (both read the app's schedules). Amazon builds the report in minutes; returns reach it
# late, which the schedule's overlap window covers, so a few runs a day suffice.
AMAZON_RETURNS_EVERY_HOURS = 6


# Personal-data retention: how long a closed order keeps its customer's names, addresses and contacts, per
# channel (`default=90d,amazon=30d`; s, m, h or d). Its one home: HUB_PERSONAL_DATA_RETENTION, set by the CDK
# stack (context `personal_data_retention`) and the local stack, defaulting to this. Amazon's Data Protection
# Policy allows 30 days after delivery; a delivered order closes when its last parcel is delivered.
PERSONAL_DATA_RETENTION = "default=90d,amazon=30d"
# How often the redact_personal_data schedule runs, in minutes (with its per-lane bound, the pace it keeps).
REDACT_PERSONAL_DATA_EVERY_MINUTES = 15


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
    # HUB_FRAUD_POLICY: JSON overriding the fraud rules' thresholds and weights (domain/fraud_policy.py).
    fraud_policy: Mapping[str, Any] | None = None
    stripe_api_base: str | None = None
    threepl_api_base: str | None = None
    carrier_api_base: str | None = None
    # HUB_FULFILMENT_POLICY: JSON of warehouses and tracking thresholds (domain/fulfilment/policy.py).
    fulfilment_policy: Mapping[str, Any] | None = None
    # HUB_RETURNS_POLICY: JSON of the returns policy and per-store overrides (domain/returns/policy.py).
    returns_policy: Mapping[str, Any] | None = None
    shopify_api_base: str | None = None
    woocommerce_api_base: str | None = None
    # Sales recovery: how long a PAYMENT_PENDING order waits for a new payment method, and how many
    # payment attempts it gets before it is cancelled.
    payment_recovery_seconds: int = 48 * 3600
    payment_max_attempts: int = 3
    # HUB_STUCK_AFTER: the status page's per-status "no progress for" limits ("PAID=30m,SHIPPED=10d").
    stuck_after: str | None = None
    # HUB_ALLOW_PRIVATE_HOSTS=1: the hub may call loopback and private hosts (store URLs, API bases). Set only
    # by the local stack (`local/`), whose simulators listen on 127.0.0.1; unset in AWS: public hosts only.
    allow_private_hosts: bool = False
    # HUB_PERSONAL_DATA_RETENTION: per-channel retention of a closed order's personal data (see above).
    personal_data_retention: str = PERSONAL_DATA_RETENTION

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
    return Settings(
        stage=environ.get("HUB_STAGE", "dev"),
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
        fraud_policy=_json_setting(environ, "HUB_FRAUD_POLICY"),
        stripe_api_base=environ.get("HUB_STRIPE_API_BASE") or None,
        threepl_api_base=environ.get("HUB_3PL_API_BASE") or None,
        carrier_api_base=environ.get("HUB_CARRIER_API_BASE") or None,
        fulfilment_policy=_json_setting(environ, "HUB_FULFILMENT_POLICY"),
        returns_policy=_json_setting(environ, "HUB_RETURNS_POLICY"),
        shopify_api_base=environ.get("HUB_SHOPIFY_API_BASE") or None,
        woocommerce_api_base=environ.get("HUB_WOOCOMMERCE_API_BASE") or None,
        payment_recovery_seconds=_int_setting(environ, "HUB_PAYMENT_RECOVERY_SECONDS", 48 * 3600),
        payment_max_attempts=_int_setting(environ, "HUB_PAYMENT_MAX_ATTEMPTS", 3),
        stuck_after=environ.get("HUB_STUCK_AFTER") or None,
        allow_private_hosts=environ.get("HUB_ALLOW_PRIVATE_HOSTS") == "1",
        personal_data_retention=environ.get("HUB_PERSONAL_DATA_RETENTION") or PERSONAL_DATA_RETENTION,
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


def _json_setting(environ: Mapping[str, str], name: str) -> Mapping[str, Any] | None:
    raw = environ.get(name)
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigurationError(f"{name} must be a JSON object")
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return from_environ(os.environ)
