"""Business policies operators change at run time: each one's schema (the policy's own parser), its
validated default, the policies in force, and the use cases behind /api/settings (versioned, audited)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from chalicelib.domain.errors import ConcurrentUpdate, InvalidInput, NotFound

if TYPE_CHECKING:
    from datetime import timedelta

    from chalicelib.domain.fraud_policy import FraudPolicy
    from chalicelib.domain.fulfilment.policy import FulfilmentPolicy
    from chalicelib.domain.order import OrderStatus
    from chalicelib.domain.payment import PaymentPolicy
    from chalicelib.domain.retention import RetentionPolicy
    from chalicelib.domain.returns.policy import ReturnPolicies

T = TypeVar("T")

# A standard SSM parameter holds 4 KB; advanced ones (8 KB) cost money and are not needed for policies.
MAX_VALUE_CHARS = 4096
# How many changed paths a change's summary names before it says "and N more".
SUMMARY_PATHS = 8


class SettingRefused(InvalidInput):
    """A value its setting's schema refuses (answered 422 with the reason)."""


@dataclass(frozen=True)
class RuntimeSetting(Generic[T]):
    """One policy: its name in the store, what it means, its default (JSON) and its parser (the schema)."""

    name: str
    meaning: str
    default: Any
    parser: Callable[[Any], T]

    def parse(self, value: Any) -> T:
        """The policy the value describes, or SettingRefused with the parser's reason."""
        try:
            return self.parser(value)
        except (InvalidInput, ValueError, TypeError, KeyError) as exc:
            raise SettingRefused(f"{self.name}: {exc}") from None


def _object(parse: Callable[[Mapping[str, Any]], T]) -> Callable[[Any], T]:
    def parser(value: Any) -> T:
        if not isinstance(value, Mapping):
            raise InvalidInput("must be a JSON object")
        return parse(value)

    return parser


def _text(parse: Callable[[str], T]) -> Callable[[Any], T]:
    def parser(value: Any) -> T:
        if not isinstance(value, str):
            raise InvalidInput("must be a JSON string")
        return parse(value)

    return parser


# The parsers are the policies' own (imported on first use: a function loads only the policies it reads).
def _fraud(config: Mapping[str, Any]) -> FraudPolicy:
    from chalicelib.domain.fraud_policy import FraudPolicy

    return FraudPolicy.from_mapping(config)


def _fulfilment(config: Mapping[str, Any]) -> FulfilmentPolicy:
    from chalicelib.domain.fulfilment.policy import FulfilmentPolicy

    return FulfilmentPolicy.from_mapping(config)


def _returns(config: Mapping[str, Any]) -> ReturnPolicies:
    from chalicelib.domain.returns.policy import ReturnPolicies

    return ReturnPolicies.from_mapping(config)


def _payment(config: Mapping[str, Any]) -> PaymentPolicy:
    from chalicelib.domain.payment import PaymentPolicy

    unknown = set(config) - {"recovery_seconds", "max_attempts"}
    if unknown:
        raise InvalidInput(f"unknown settings {sorted(unknown)}")
    values = {k: config[k] for k in ("recovery_seconds", "max_attempts") if k in config}
    if any(not isinstance(v, int) or isinstance(v, bool) for v in values.values()):
        raise InvalidInput("recovery_seconds and max_attempts are whole numbers")
    return PaymentPolicy(**values)


def _stuck(spec: str) -> dict[OrderStatus, timedelta]:
    from chalicelib.domain.status_views import stuck_thresholds

    return stuck_thresholds(spec)


def _retention(spec: str) -> RetentionPolicy:
    from chalicelib.domain.retention import RetentionPolicy

    return RetentionPolicy.parse(spec)


FRAUD_POLICY = RuntimeSetting(
    "fraud_policy",
    "fraud rules' thresholds, weights, high-value amounts and velocity limits (domain/fraud_policy.py); "
    "what it leaves out keeps its default",
    {},
    _object(_fraud),
)
FULFILMENT_POLICY = RuntimeSetting(
    "fulfilment_policy",
    "warehouses (id, provider = a 3PL connection, countries, skus, priority, promise_days, address) and "
    '"silent_after_hours" (domain/fulfilment/policy.py)',
    {"warehouses": [{"id": "main", "provider": "default"}], "silent_after_hours": 48},
    _object(_fulfilment),
)
RETURNS_POLICY = RuntimeSetting(
    "returns_policy",
    "the returns policy with per-store overrides and kits (domain/returns/policy.py)",
    {},
    _object(_returns),
)
PAYMENT_RECOVERY = RuntimeSetting(
    "payment_recovery",
    "how long a PAYMENT_PENDING order waits for a new payment method (recovery_seconds) and how many "
    "attempts it gets (max_attempts)",
    {"recovery_seconds": 48 * 3600, "max_attempts": 3},
    _object(_payment),
)
STUCK_AFTER = RuntimeSetting(
    "stuck_after",
    'the status page\'s "no progress for" limits per status over the built-in ones ("PAID=30m,SHIPPED=10d")',
    "",
    _text(_stuck),
)
PERSONAL_DATA_RETENTION = RuntimeSetting(
    "personal_data_retention",
    "how long a closed order keeps its customer's personal data, per channel (Amazon allows 30 days)",
    "default=90d,amazon=30d",
    _text(_retention),
)

RUNTIME_SETTINGS: dict[str, RuntimeSetting[Any]] = {
    s.name: s
    for s in (
        FRAUD_POLICY,
        FULFILMENT_POLICY,
        RETURNS_POLICY,
        PAYMENT_RECOVERY,
        STUCK_AFTER,
        PERSONAL_DATA_RETENTION,
    )
}


def runtime_setting(name: str) -> RuntimeSetting[Any]:
    try:
        return RUNTIME_SETTINGS[name]
    except KeyError:
        raise NotFound(f"no setting named {name!r} (known: {', '.join(sorted(RUNTIME_SETTINGS))})") from None


# ------------------------------------------------------------------------------------------- ports


@dataclass(frozen=True)
class StoredSetting:
    name: str
    value: Any
    version: int
    modified_at: datetime | None = None


@dataclass(frozen=True)
class SettingChange:
    """A change made through the API: who (the operator credential's label, never it) and what."""

    name: str
    version: int
    at: datetime
    by: str
    summary: str

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "at": self.at.isoformat(), "by": self.by, "summary": self.summary}


class CurrentSettings(Protocol):
    def current(self) -> Mapping[str, Any]:
        """Every stored setting's value by name, as fresh as the store's cache allows (a value the store
        cannot read as JSON is absent)."""
        ...


class SettingsStore(CurrentSettings, Protocol):
    def read(self, name: str) -> StoredSetting | None: ...

    def write(self, name: str, text: str) -> int:
        """Store the value (JSON text); answers its new version."""
        ...

    def versions(self, name: str) -> list[StoredSetting]:
        """Every stored version, oldest first."""
        ...


class SettingsAudit(Protocol):
    def claim(self, change: SettingChange) -> None:
        """Record the change; ConcurrentUpdate when its version is recorded already (another writer)."""
        ...

    def release(self, name: str, version: int) -> None:
        """Forget a claimed change whose write failed."""
        ...

    def changes(self, name: str) -> list[SettingChange]: ...


# ------------------------------------------------------------------------------------ in force


class Policies:
    """The policies in force: each setting's parsed value from the store's current values, parsed again
    only when the value changed. A missing value takes the default; an unusable one (written around the
    API) keeps the last good policy, else the default, and is reported to `unusable`."""

    def __init__(
        self,
        source: CurrentSettings | None = None,
        unusable: Callable[[str, str], None] = lambda name, reason: None,
    ) -> None:
        self._source = source
        self._unusable = unusable
        self._parsed: dict[str, tuple[Any, Any]] = {}

    def get(self, setting: RuntimeSetting[T]) -> T:
        values = self._source.current() if self._source is not None else {}
        raw = values.get(setting.name, setting.default)
        kept = self._parsed.get(setting.name)
        if kept is not None and kept[0] == raw:
            parsed: T = kept[1]
            return parsed
        try:
            parsed = setting.parse(raw)
        except SettingRefused as exc:
            self._unusable(setting.name, str(exc))
            if kept is not None:
                return kept[1]  # type: ignore[no-any-return]
            raw, parsed = setting.default, setting.parse(setting.default)
        self._parsed[setting.name] = (raw, parsed)
        return parsed


# ----------------------------------------------------------------------------------- use cases


def read_settings(store: SettingsStore) -> list[dict[str, Any]]:
    """Every setting: its name, meaning, version (0: never stored, the default applies) and value."""
    return [read_one(name, store) for name in sorted(RUNTIME_SETTINGS)]


def read_one(name: str, store: SettingsStore) -> dict[str, Any]:
    setting = runtime_setting(name)
    stored = store.read(name)
    return {
        "name": name,
        "meaning": setting.meaning,
        "version": stored.version if stored else 0,
        "value": stored.value if stored else setting.default,
        "default": setting.default,
        "modified_at": stored.modified_at.isoformat() if stored and stored.modified_at else None,
    }


def change_setting(
    name: str,
    body: Any,
    *,
    store: SettingsStore,
    audit: SettingsAudit,
    by: str,
    now: Callable[[], datetime],
) -> dict[str, Any]:
    """`{"value": ..., "expected_version"?: n}`: validated by the policy's parser, written as a new version,
    the change recorded. NotFound, InvalidInput (malformed), SettingRefused (the schema), ConcurrentUpdate
    (not the expected version, or another change to the same version first)."""
    setting = runtime_setting(name)
    if not isinstance(body, dict) or "value" not in body or set(body) - {"value", "expected_version"}:
        raise InvalidInput('body must be {"value": ..., "expected_version"?: <version>}')
    expected = body.get("expected_version")
    if expected is not None and (not isinstance(expected, int) or isinstance(expected, bool) or expected < 0):
        raise InvalidInput("expected_version must be a whole number (0: never stored)")
    value = body["value"]
    setting.parse(value)
    text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    if len(text) > MAX_VALUE_CHARS:
        raise SettingRefused(f"{name}: {len(text)} characters of JSON, at most {MAX_VALUE_CHARS}")
    current = store.read(name)
    version = current.version if current else 0
    if expected is not None and expected != version:
        raise ConcurrentUpdate(f"{name} is at version {version}, not {expected}: read it again")
    change = SettingChange(
        name, version + 1, now(), by, summarise(current.value if current else setting.default, value)
    )
    audit.claim(change)  # two writers of the same version: the second is refused here, before writing
    try:
        written = store.write(name, text)
    except Exception:
        audit.release(name, change.version)
        raise
    if written != change.version:  # someone wrote around the API in between: keep the record true
        audit.release(name, change.version)
        change = SettingChange(name, written, change.at, by, change.summary)
        audit.claim(change)
    return {**read_one(name, store), "change": change.to_json()}


def setting_history(name: str, *, store: SettingsStore, audit: SettingsAudit) -> list[dict[str, Any]]:
    """Each stored version, newest first, with who changed it and what (versions written around the API,
    such as the deployment's default, say so)."""
    runtime_setting(name)
    changes = {c.version: c for c in audit.changes(name)}
    entries = []
    for stored in reversed(store.versions(name)):
        change = changes.get(stored.version)
        entries.append(
            {
                "version": stored.version,
                "value": stored.value,
                "at": stored.modified_at.isoformat() if stored.modified_at else None,
                "by": change.by if change else "not through the API (deployment or console)",
                "summary": change.summary if change else None,
            }
        )
    return entries


def summarise(old: Any, new: Any) -> str:
    """What changed, as JSON paths: `weights.high_value: 45 → 60; added warehouses[1]`."""
    changes: list[str] = []
    _diff(old, new, "", changes)
    if not changes:
        return "no change"
    shown = changes[:SUMMARY_PATHS]
    more = len(changes) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more else "")


def _diff(old: Any, new: Any, path: str, out: list[str]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in old:
                out.append(f"added {sub}")
            elif key not in new:
                out.append(f"removed {sub}")
            else:
                _diff(old[key], new[key], sub, out)
        return
    if isinstance(old, list) and isinstance(new, list):
        for i in range(max(len(old), len(new))):
            sub = f"{path}[{i}]"
            if i >= len(old):
                out.append(f"added {sub}")
            elif i >= len(new):
                out.append(f"removed {sub}")
            else:
                _diff(old[i], new[i], sub, out)
        return
    if old != new:
        out.append(f"{path or 'value'}: {_short(old)} → {_short(new)}")


def _short(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= 40 else text[:37] + "..."
