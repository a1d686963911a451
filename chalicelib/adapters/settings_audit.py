"""SettingsAudit on the single table: one item per change of a runtime setting, keyed by its version."""

from __future__ import annotations

from pynamodb.exceptions import PutError

from chalicelib.adapters.models import SettingChangeModel
from chalicelib.domain.errors import ConcurrentUpdate
from chalicelib.domain.runtime_settings import SettingChange

# Versions are zero-padded so the sort key orders them as numbers.
_VERSION_DIGITS = 10


def _keys(name: str, version: int) -> tuple[str, str]:
    return f"SETTING#{name}", f"V#{version:0{_VERSION_DIGITS}d}"


class DynamoSettingsAudit:
    def claim(self, change: SettingChange) -> None:
        pk, sk = _keys(change.name, change.version)
        item = SettingChangeModel(pk, sk, at=change.at, by=change.by, summary=change.summary)
        try:
            item.save(condition=SettingChangeModel.pk.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise ConcurrentUpdate(
                    f"{change.name} version {change.version} was written by another change first"
                ) from exc
            raise

    def release(self, name: str, version: int) -> None:
        SettingChangeModel(*_keys(name, version)).delete()

    def changes(self, name: str) -> list[SettingChange]:
        pk, _ = _keys(name, 0)
        return [
            SettingChange(name, int(item.sk.removeprefix("V#")), item.at, item.by, item.summary)
            for item in SettingChangeModel.query(pk)
        ]
