"""RawArchive on DynamoDB: accepted deliveries byte for byte, compressed, with a retention TTL."""

from __future__ import annotations

import zlib
from datetime import timedelta

from pynamodb.exceptions import PutError

from chalicelib.adapters.models import RawDeliveryModel
from chalicelib.domain.delivery import Delivery
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.ports import ArchivedDelivery

# Longer than every sender's retry horizon (Shopify 4 h, Stripe 3 days) and than SQS's 14-day
# retention (DLQs included): whatever an operator can still redrive can also be replayed raw.
RETENTION = timedelta(days=30)
# DynamoDB items stop at 400 KB; leave room for the other attributes.
MAX_COMPRESSED_BYTES = 380_000


def _key(delivery_id: str) -> tuple[str, str]:
    return f"RAW#{delivery_id}", "RAW"


class DynamoRawArchive:
    def put(self, delivery: Delivery, raw: bytes) -> None:
        body = zlib.compress(raw, level=6)
        if len(body) > MAX_COMPRESSED_BYTES:
            raise InvalidInput("delivery too large to keep")
        model = RawDeliveryModel(
            *_key(delivery.delivery_id),
            channel=delivery.channel,
            store=delivery.store,
            topic=delivery.topic,
            received_at=delivery.received_at,
            body=body,
            expires_at=delivery.received_at + RETENTION,
        )
        try:
            model.save(condition=RawDeliveryModel.pk.does_not_exist())
        except PutError as exc:
            # Already archived (a redelivery): the first copy is the one that counts.
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise

    def forget(self, delivery_id: str) -> None:
        """Personal-data retention: the exact bytes go (a delete of nothing is fine)."""
        RawDeliveryModel(*_key(delivery_id)).delete()

    def get(self, delivery_id: str) -> ArchivedDelivery | None:
        try:
            model = RawDeliveryModel.get(*_key(delivery_id))
        except RawDeliveryModel.DoesNotExist:
            return None
        return ArchivedDelivery(
            delivery_id=delivery_id,
            channel=model.channel,
            store=model.store,
            topic=model.topic,
            received_at=model.received_at,
            raw=zlib.decompress(model.body),
        )
