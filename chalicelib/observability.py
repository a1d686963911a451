"""The hub's structured logger (Powertools, JSON lines): one instance, keys appended per order."""

from __future__ import annotations

from aws_lambda_powertools import Logger

logger = Logger(service="order-hub")
