"""The 3PL client as the fulfilment stage's ThreePL port: its refusals in the domain's words."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chalicelib.domain.fulfilment import AlreadyShippedError, RecallRefused
from chalicelib.integrations.threepl.client import AlreadyShipped, HandedToCarrier, ThreePLClient


class TranslatedThreePL:
    """Already shipped and handed to the carrier become the domain's AlreadyShippedError and RecallRefused."""

    def __init__(self, client: ThreePLClient) -> None:
        self._client = client

    def create_fulfillment_order(self, request: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._client.create_fulfillment_order(
            request, idempotency_key=idempotency_key
        )
        return answer

    def cancel(self, fulfillment_order_id: str) -> dict[str, Any]:
        try:
            answer: dict[str, Any] = self._client.cancel(fulfillment_order_id)
        except AlreadyShipped as exc:
            raise AlreadyShippedError(str(exc)) from exc
        return answer

    def recall(self, fulfillment_order_id: str) -> list[str]:
        try:
            return list(self._client.recall(fulfillment_order_id))
        except HandedToCarrier as exc:
            raise RecallRefused(str(exc)) from exc

    def inventory(self, skus: Sequence[str], warehouse: str | None = None) -> list[dict[str, Any]]:
        return list(self._client.inventory(list(skus), warehouse))
