"""The credit ledger on DynamoDB (moto in-process): movements, balances and totals go with the order's write
in one transaction, and a refused condition leaves the order and the ledger as they were."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from chalicelib.adapters.credit_ledger import DynamoCreditLedger
from chalicelib.adapters.order_repository import DynamoOrderRepository
from chalicelib.domain.credit.model import CreditRefused, DuplicateMovement, MovementKind, Refusal
from chalicelib.domain.credit.redemption import redeem_credits
from chalicelib.domain.errors import ConcurrentUpdate
from chalicelib.domain.manual_channel import normalise_manual
from tests.fakes_credit import issue_with

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def repo(table):
    return DynamoOrderRepository()


@pytest.fixture
def ledger():
    return DynamoCreditLedger(now=lambda: NOW)


def place(repo, external_id, credits=None, currency="EUR"):
    payment = {"source": "manual"}
    if credits is not None:
        payment["credits"] = credits
    order = normalise_manual(
        {
            "external_id": external_id,
            "currency": currency,
            "placed_at": "2026-11-23T10:00:00Z",
            "customer": {"email": "ada@example.com"},
            "lines": [{"title": "Lamp", "quantity": 1, "unit_price": "20.00"}],
            "payment": payment,
        }
    )
    repo.save(order, expected_version=None)
    return order.order_id


def give_voucher(repo, amount="15.00", *, at=NOW, days=365, return_id="r-1"):
    origin = place(repo, f"origin-{return_id}")
    return origin, issue_with(
        repo, origin, kind="voucher", amount=amount, return_id=return_id, at=at, days=days
    )


def test_an_issue_writes_balance_movement_and_liability_with_the_order(repo, ledger):
    origin, movement = give_voucher(repo)
    balance = ledger.voucher(movement.code)
    assert (balance.amount, balance.currency, balance.status) == (Decimal("15.00"), "EUR", "active")
    assert balance.expires_at == NOW + timedelta(days=365)
    assert [m.movement_id for m in ledger.movements(movement.account)] == ["issue:r-1"]
    assert ledger.movements(movement.account)[0].kind is MovementKind.ISSUE
    assert ledger.liabilities() == {"EUR": Decimal("15.00")}
    assert repo.get(origin).order.history[-1].event == "credit_issue"


def test_a_redemption_takes_from_balance_and_total_and_a_second_run_takes_nothing(repo, ledger):
    _, movement = give_voucher(repo)
    order_id = place(repo, "P-1", [{"kind": "voucher", "code": movement.code, "amount": "12.50"}])
    redeem_credits(order_id, orders=repo, now=lambda: NOW)
    assert redeem_credits(order_id, orders=repo, now=lambda: NOW)["already"] is True
    assert ledger.voucher(movement.code).amount == Decimal("2.50")
    assert ledger.liabilities() == {"EUR": Decimal("2.50")}
    assert [m.kind for m in ledger.movements(movement.account)] == [MovementKind.REDEEM, MovementKind.ISSUE]


@pytest.mark.parametrize(
    "case",
    [
        ("15.01", "EUR", NOW, Refusal.INSUFFICIENT),
        ("5.00", "GBP", NOW, Refusal.CURRENCY),
        ("5.00", "EUR", NOW + timedelta(days=400), Refusal.EXPIRED),
    ],
    ids=["insufficient", "currency", "expired"],
)
def test_a_refused_redemption_leaves_the_order_and_the_ledger_unchanged(repo, ledger, case):
    amount, currency, at, reason = case
    _, movement = give_voucher(repo)
    order_id = place(repo, "P-2", [{"kind": "voucher", "code": movement.code, "amount": amount}], currency)
    before = repo.get(order_id)
    with pytest.raises(CreditRefused) as refused:
        redeem_credits(order_id, orders=repo, now=lambda: at)
    assert refused.value.reason is reason
    after = repo.get(order_id)
    assert (after.version, after.order) == (before.version, before.order)
    assert ledger.voucher(movement.code).amount == Decimal("15.00")
    assert ledger.liabilities() == {"EUR": Decimal("15.00")}
    assert len(ledger.movements(movement.account)) == 1


def test_an_unknown_voucher_is_refused_and_nothing_is_written(repo, ledger):
    order_id = place(repo, "P-3", [{"kind": "voucher", "code": "ABCD-EFGH-JKLM-NPQR", "amount": "1.00"}])
    with pytest.raises(CreditRefused) as refused:
        redeem_credits(order_id, orders=repo, now=lambda: NOW)
    assert refused.value.reason is Refusal.UNKNOWN
    assert ledger.liabilities() == {}
    assert repo.get(order_id).version == 1


def test_a_stale_order_version_fails_the_whole_transaction_as_a_concurrent_update(repo, ledger):
    _, movement = give_voucher(repo)
    order_id = place(repo, "P-4")
    stored = repo.get(order_id)
    redeem = movement.__class__(
        movement_id=f"redeem:{order_id}:{movement.account}",
        account=movement.account,
        kind=MovementKind.REDEEM,
        amount=Decimal("-5.00"),
        currency="EUR",
        order_id=order_id,
        at=NOW,
    )
    with pytest.raises(ConcurrentUpdate):
        repo.save(stored.order, expected_version=stored.version + 7, movements=[redeem])
    assert ledger.voucher(movement.code).amount == Decimal("15.00")
    assert ledger.liabilities() == {"EUR": Decimal("15.00")}


def test_a_movement_id_already_in_the_ledger_is_reported_as_duplicate_and_nothing_is_written(repo, ledger):
    _, movement = give_voucher(repo)
    other = place(repo, "P-5")
    stored = repo.get(other)
    with pytest.raises(DuplicateMovement) as duplicate:
        repo.save(stored.order, expected_version=stored.version, movements=[movement])
    assert duplicate.value.movement_ids == ["issue:r-1"]
    assert repo.get(other).version == stored.version
    assert ledger.liabilities() == {"EUR": Decimal("15.00")}


def test_the_ledger_answers_none_for_an_account_it_does_not_hold(ledger, repo):
    assert ledger.voucher("ABCD-EFGH-JKLM-NPQR") is None
    assert ledger.movements("voucher:ABCD-EFGH-JKLM-NPQR") == []
