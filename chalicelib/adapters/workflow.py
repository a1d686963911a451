"""Step Functions: one execution per order, named after it (retries: `<order>-retry-<n>`)."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError


class StepFunctionsWorkflow:
    def __init__(self, sfn: Any, state_machine_arn: str) -> None:
        self._sfn = sfn
        self._arn = state_machine_arn

    def start(self, order_id: str, payload: dict[str, Any], *, name: str | None = None) -> str:
        execution = name or order_id
        try:
            response = self._sfn.start_execution(
                stateMachineArn=self._arn, name=execution, input=json.dumps(payload)
            )
            return str(response["executionArn"])
        except ClientError as exc:
            # AWS answers a repeat with identical input with the running execution; other repeats
            # (and every repeat on the local emulator) with ExecutionAlreadyExists: both mean started.
            if exc.response["Error"]["Code"] != "ExecutionAlreadyExists":
                raise
            return self.execution_arn(execution)

    def complete_task(self, token: str, output: dict[str, Any]) -> bool:
        try:
            self._sfn.send_task_success(taskToken=token, output=json.dumps(output))
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken"):
                return False
            raise
        return True

    def stop(self, order_id: str, cause: str, *, execution_arn: str | None = None) -> bool:
        arn = execution_arn or self.execution_arn(order_id)
        try:
            if self._sfn.describe_execution(executionArn=arn)["status"] != "RUNNING":
                return False
            self._sfn.stop_execution(executionArn=arn, error="OrderCancelled", cause=cause[:32768])
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("ExecutionDoesNotExist", "ValidationException"):
                return False
            raise
        return True

    def execution_arn(self, execution: str) -> str:
        # arn:aws:states:<region>:<account>:stateMachine:<name> → ...:execution:<name>:<execution>
        prefix, _, machine = self._arn.rpartition(":stateMachine:")
        return f"{prefix}:execution:{machine}:{execution}"
