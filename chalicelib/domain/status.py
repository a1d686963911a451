"""Which status changes are forward moves: a late or repeated event never takes an order back."""

from __future__ import annotations

from chalicelib.domain.order import OrderStatus as S

# The normal path, in order. ON_HOLD and FAILED sit beside it (an operator moves orders out of them).
_PATH = [
    S.RECEIVED,
    S.FRAUD_REVIEW,
    S.APPROVED,
    S.PAYMENT_PENDING,
    S.PAID,
    S.FULFILMENT_REQUESTED,
    S.PARTIALLY_SHIPPED,
    S.SHIPPED,
    S.DELIVERED,
    S.COMPLETED,
    S.RETURN_REQUESTED,
    S.RETURNED,
    S.PARTIALLY_REFUNDED,
    S.REFUNDED,
]
_RANK = {status: rank for rank, status in enumerate(_PATH)}

# Nothing moves an order out of these except an operator's explicit action.
TERMINAL = frozenset({S.CANCELLED, S.REFUNDED})


def is_forward(current: S, target: S) -> bool:
    """True when moving from `current` to `target` does not go back."""
    if current == target or current in TERMINAL:
        return False
    if target in (S.CANCELLED, S.ON_HOLD, S.FAILED):
        return current != S.COMPLETED or target != S.CANCELLED
    if current in (S.ON_HOLD, S.FAILED):
        return True
    if target in (S.PARTIALLY_REFUNDED, S.REFUNDED):
        # A refund can happen at any stage after the order exists.
        return current != S.REFUNDED
    return _RANK[target] > _RANK[current]


def from_on(status: S) -> frozenset[S]:
    """`status` and every status after it on the normal path (an order in one of them has passed `status`)."""
    return frozenset(_PATH[_RANK[status] :])
