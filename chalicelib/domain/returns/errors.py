"""Why a return or refund is refused: the order cannot return (409), or the request breaks a rule (422)."""

from __future__ import annotations

from chalicelib.domain.errors import ConcurrentUpdate, HubError


class ReturnNotAllowed(ConcurrentUpdate):
    """The order is not in a state that can be returned (not delivered, cancelled): answered 409."""


class ReturnRefused(HubError):
    """The request breaks the returns policy or the order (answered 422 with the rule that refused it)."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"{rule}: {detail}")
        self.rule = rule
        self.detail = detail


class ReturnStepConflict(ConcurrentUpdate):
    """An operator's action on a return that has already moved on (another operator got there first)."""
