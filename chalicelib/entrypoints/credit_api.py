"""The credit ledger for operators: a voucher's balance and movements, and what is owed in credit."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, NotFoundError

from chalicelib.composition import services
from chalicelib.domain.credit.model import CreditBalance, CreditMovement, normalise_code, voucher_account
from chalicelib.entrypoints.errors import http_errors

bp = Blueprint(__name__)
MOVEMENTS_SHOWN = 50


@bp.route("/api/credit/vouchers/{code}", methods=["GET"])
@http_errors
def get_voucher(code: str) -> dict[str, Any]:
    """A voucher's balance, expiry, status and latest movements (the code as typed: any case, dashes)."""
    canonical = normalise_code(code)
    ledger = services().credit()
    balance = ledger.voucher(canonical) if canonical else None
    if canonical is None or balance is None:
        raise NotFoundError("no such voucher")  # the code is not echoed: it is a bearer secret
    movements = ledger.movements(voucher_account(canonical), MOVEMENTS_SHOWN)
    return {**_balance(balance), "movements": [_movement(m) for m in movements]}


@bp.route("/api/credit/liabilities", methods=["GET"])
@http_errors
def get_liabilities() -> dict[str, Any]:
    """What the merchant owes in vouchers and store credit, per currency (running totals, no scan)."""
    totals = services().credit().liabilities()
    return {"liabilities": {currency: f"{amount:f}" for currency, amount in sorted(totals.items())}}


def _balance(balance: CreditBalance) -> dict[str, Any]:
    return {
        "code": balance.code,
        "balance": f"{balance.amount:f}",
        "currency": balance.currency,
        "expires_at": balance.expires_at.isoformat() if balance.expires_at else None,
        "status": balance.status,
    }


def _movement(movement: CreditMovement) -> dict[str, Any]:
    return {
        "movement_id": movement.movement_id,
        "kind": movement.kind.value,
        "amount": f"{movement.amount:f}",
        "currency": movement.currency,
        "order_id": movement.order_id,
        "return_id": movement.return_id,
        "at": movement.at.isoformat(),
    }
