"""Scan log files for secrets and personal data (issue #17): what a log line must never hold.

`scan(lines, secrets, personal)` answers `Finding(line number, kind)` for every line holding one of the
given secrets, a Stripe key, an LWA token, a card number (a known brand's prefix, 13-19 digits, Luhn), an
e-mail address, a phone number, or one of the given street addresses or phone numbers. A finding never
carries what was found: the report names the file, the line and the kind only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"

PATTERNS: dict[str, re.Pattern[str]] = {
    "Stripe key": re.compile(r"\b(?:sk|rk)_(?:test|live)_[0-9A-Za-z]{4,}|\bwhsec_[0-9A-Za-z]{4,}"),
    "LWA token": re.compile(r"\bAtz[ar]\|[^\s\"',]{4,}"),
    "e-mail address": re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
    # International (+44 20 7946 0123, +12125550123) and North American ((415) 555-0123) numbers.
    "phone number": re.compile(r"(?<![\w+])\+\d{1,3}[ .-]?(?:\d[ .-]?){6,12}\d(?!\d)|\(\d{3}\) ?\d{3}-\d{4}"),
}
_DIGIT_RUN = re.compile(r"(?<![\w.])\d(?:[ -]?\d){12,18}(?![\w.])")
# Amazon order ids (3-7-7 digits) are a digit run that can pass Luhn by chance; no card is written that way.
_AMAZON_ORDER_ID = re.compile(r"^\d{3}-\d{7}-\d{7}$")
# Vendors' own support addresses in their libraries' messages (the stripe library's retry warning).
VENDOR_ADDRESSES = frozenset({"support@stripe.com"})
# Issuer prefixes of the card brands (Visa, Mastercard, Amex, Discover, Diners, JCB, UnionPay).
_CARD_PREFIX = re.compile(r"^(?:4|5[1-5]|2[2-7]|3[47]|3[068]|6011|65|64[4-9]|35|62)")


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    kind: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}"


def luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def has_card_number(line: str) -> bool:
    for match in _DIGIT_RUN.finditer(line):
        if _AMAZON_ORDER_ID.match(match.group()):
            continue
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and _CARD_PREFIX.match(digits) and luhn(digits):
            return True
    return False


def _found(pattern: re.Pattern[str], line: str) -> bool:
    return any(match.group() not in VENDOR_ADDRESSES for match in pattern.finditer(line))


def scan_line(line: str, secrets: Mapping[str, str], personal: Mapping[str, str]) -> list[str]:
    """The kinds of what `line` must not hold (secrets and personal: value → its kind)."""
    kinds = [kind for value, kind in secrets.items() if value in line]
    kinds += [kind for kind, pattern in PATTERNS.items() if _found(pattern, line)]
    if has_card_number(line):
        kinds.append("card number")
    kinds += [kind for value, kind in personal.items() if value in line]
    return sorted(set(kinds))


def scan(
    path: Path, secrets: Mapping[str, str], personal: Mapping[str, str], *, name: str | None = None
) -> Iterator[Finding]:
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            for kind in scan_line(line, secrets, personal):
                yield Finding(name or str(path), number, kind)


_ADDRESS_KEYS = {"address1", "address_1", "line1", "AddressLine1", "street1"}
_PHONE_KEYS = {"phone", "Phone", "phone_number"}


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def fixture_personal_data(extra_addresses: Iterable[str] = ()) -> dict[str, str]:
    """The street lines and phone numbers of the channel fixtures and the simulators' customers."""
    found: dict[str, str] = {}
    for path in sorted(FIXTURES.rglob("*.json")):
        for key, value in _walk(json.loads(path.read_text(encoding="utf-8"))):
            if isinstance(value, str) and len(value.strip()) >= 5:
                if key in _ADDRESS_KEYS:
                    found[value.strip()] = "street address"
                elif key in _PHONE_KEYS:
                    found[value.strip()] = "phone number"
    for line in [*simulator_streets(), *extra_addresses]:
        found[line] = "street address"
    return found


def simulator_streets() -> list[str]:
    """The first address line of every customer address the channel simulators make up."""
    from local.simulators import amazon, woocommerce
    from local.simulators.shopify import orders

    streets = [address[0] for market in amazon._MARKETS.values() for address in market.addresses]
    streets += [address[0] for market in woocommerce._MARKETS for address in market.addresses]
    streets += [place[0] for places in orders._PLACES.values() for place in places]
    return [street for street in streets if street and len(street) >= 5]
