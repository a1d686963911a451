import pytest

from chalicelib.domain.order import OrderStatus as S
from chalicelib.domain.status import is_forward


@pytest.mark.parametrize(
    ("current", "target", "expected"),
    [
        (S.RECEIVED, S.PAID, True),
        (S.PAID, S.RECEIVED, False),
        (S.SHIPPED, S.PAID, False),
        (S.PAID, S.CANCELLED, True),
        (S.CANCELLED, S.PAID, False),
        (S.CANCELLED, S.CANCELLED, False),
        (S.COMPLETED, S.CANCELLED, False),
        (S.DELIVERED, S.PARTIALLY_REFUNDED, True),
        (S.PARTIALLY_REFUNDED, S.REFUNDED, True),
        (S.REFUNDED, S.PARTIALLY_REFUNDED, False),
        (S.FAILED, S.PAID, True),
        (S.PAID, S.ON_HOLD, True),
    ],
)
def test_is_forward(current, target, expected):
    assert is_forward(current, target) is expected
