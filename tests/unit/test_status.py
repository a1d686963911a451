import pytest

from chalicelib.domain.order import OrderStatus as S
from chalicelib.domain.status import is_forward

FORWARD = [
    (S.RECEIVED, S.PAID), (S.PAID, S.CANCELLED), (S.DELIVERED, S.PARTIALLY_REFUNDED),
    (S.PARTIALLY_REFUNDED, S.REFUNDED), (S.FAILED, S.PAID), (S.PAID, S.ON_HOLD),
]  # fmt: skip
NOT_FORWARD = [
    (S.PAID, S.RECEIVED), (S.SHIPPED, S.PAID), (S.CANCELLED, S.PAID),
    (S.CANCELLED, S.CANCELLED), (S.COMPLETED, S.CANCELLED), (S.REFUNDED, S.PARTIALLY_REFUNDED),
]  # fmt: skip


@pytest.mark.parametrize(
    ("current", "target", "expected"),
    [(c, t, True) for c, t in FORWARD] + [(c, t, False) for c, t in NOT_FORWARD],
)
def test_is_forward(current, target, expected):
    assert is_forward(current, target) is expected
