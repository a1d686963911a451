"""SettingsStore on SSM Parameter Store: one standard String parameter per runtime setting (JSON) under the
stage's path; reads through Powertools' parameters utility (cached for max_age), writes and history
through SSM itself. A write clears this process's cache, so its own next read sees the change at once."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from chalicelib.domain.runtime_settings import StoredSetting


class SsmSettingsStore:
    def __init__(self, client: Any, path: str, *, max_age: int) -> None:
        from aws_lambda_powertools.utilities.parameters import SSMProvider

        self._ssm = client
        self._path = path.rstrip("/")
        self._max_age = max_age
        self._provider = SSMProvider(boto3_client=client)

    def _name(self, name: str) -> str:
        return f"{self._path}/{name}"

    def current(self) -> Mapping[str, Any]:
        # One GetParametersByPath (a page per ten settings) per max_age; a value that is not JSON is None.
        values = self._provider.get_multiple(
            self._path, max_age=self._max_age, transform="json", raise_on_transform_error=False
        )
        return {name: value for name, value in values.items() if value is not None}

    def read(self, name: str) -> StoredSetting | None:
        try:
            found = self._ssm.get_parameter(Name=self._name(name))["Parameter"]
        except self._ssm.exceptions.ParameterNotFound:
            return None
        version, modified = int(found["Version"]), found.get("LastModifiedDate")
        return StoredSetting(name, _json(found["Value"]), version, modified)

    def write(self, name: str, text: str) -> int:
        answer = self._ssm.put_parameter(
            Name=self._name(name), Value=text, Type="String", Tier="Standard", Overwrite=True
        )
        self._provider.clear_cache()  # type: ignore[no-untyped-call]  # Powertools leaves it untyped
        return int(answer["Version"])

    def versions(self, name: str) -> list[StoredSetting]:
        found: list[StoredSetting] = []
        try:
            for page in self._ssm.get_paginator("get_parameter_history").paginate(Name=self._name(name)):
                found.extend(
                    StoredSetting(name, _json(p["Value"]), int(p["Version"]), p.get("LastModifiedDate"))
                    for p in page["Parameters"]
                )
        except self._ssm.exceptions.ParameterNotFound:
            return []
        return sorted(found, key=lambda s: s.version)


def _json(text: str) -> Any:
    """A stored value as JSON; text that is not JSON (written around the API) as it is."""
    try:
        return json.loads(text)
    except ValueError:
        return text
