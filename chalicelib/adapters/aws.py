"""boto3 clients, created lazily once per process and shared (never at import time)."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

from chalicelib.settings import get_settings

# Adaptive retries smooth over throttling; the timeouts keep a Lambda from hanging on a slow call.
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=5,
    read_timeout=30,
)


@cache
def client(service: str) -> Any:
    settings = get_settings()
    return boto3.session.Session().client(
        service, region_name=settings.region, endpoint_url=settings.aws_endpoint, config=_CONFIG
    )
