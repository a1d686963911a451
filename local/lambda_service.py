"""The Lambda service's side of a crash, for `python -m local moto` (bench/soak.py).

In AWS, a function's execution environment can die (out of memory, a timeout, a host lost) while the Lambda
service, Step Functions, SQS and DynamoDB go on. Locally the handlers run in the hub's process; when the soak
kills that process, moto (the AWS state) survives in its own process, and so must the endpoint moto's Step
Functions interpreter invokes functions through. This front lives beside moto and outlives the handlers:

- an Invoke goes to the hub process's gateway; when that process is gone, the front waits for a new one, as
  Lambda starts a new execution environment, up to `start_wait_s`; then it answers 500 ServiceException
  (Step Functions: Lambda.ServiceException, retried by every task);
- an Invoke whose process dies under it (the connection drops before the answer) is answered as Lambda
  answers a runtime that exited: 200 with `X-Amz-Function-Error: Unhandled`. Step Functions reports such a
  failure as `Lambda.Unknown` (it carries no error type of the function's own; AWS docs, "Handle Lambda
  service exceptions"); moto's interpreter takes the error's name from the payload's `errorType`, so the
  name goes there, and the workflows' tasks retry `Lambda.Unknown`;
- every other AWS call goes straight to moto.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import time
import uuid
from typing import Any
from urllib.parse import quote

from local.gateway import Gateway
from local.lambda_runtime import (
    DEFAULT_TIMEOUT_MS,
    FunctionNotFound,
    FunctionUnavailable,
    InvocationResult,
)

log = logging.getLogger("local.lambda_service")

# What a function's restart may take here: the hub process imports the app and provisions again (~5-15 s).
START_WAIT_SECONDS = 90.0
_RETRY_CONNECT_S = 0.2
_DROPPED = (http.client.RemoteDisconnected, http.client.IncompleteRead, ConnectionResetError, BrokenPipeError)


class RemoteFunctions:
    """The hub's functions, run by the hub process whose AWS gateway listens on `port`."""

    def __init__(self, host: str, port: int, *, start_wait_s: float = START_WAIT_SECONDS) -> None:
        self.host, self.port, self.start_wait_s = host, port, start_wait_s
        self.runtime_exits = 0  # invocations whose process died under them

    def resolve(self, name_or_arn: str) -> str:
        return name_or_arn  # the hub process knows its functions: an unknown one is its 404

    def invoke(self, name_or_arn: str, event: Any) -> InvocationResult:
        body = json.dumps(event).encode()
        path = f"/2015-03-31/functions/{quote(name_or_arn, safe='')}/invocations"
        deadline = time.monotonic() + self.start_wait_s
        while True:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=DEFAULT_TIMEOUT_MS / 1000 + 30)
            try:
                conn.connect()
            except OSError as exc:  # no process listening: a new execution environment is on its way
                conn.close()
                if time.monotonic() > deadline:
                    raise FunctionUnavailable(
                        f"{name_or_arn}: no execution environment in {self.start_wait_s:.0f} s ({exc})"
                    ) from exc
                time.sleep(_RETRY_CONNECT_S)
                continue
            try:
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                data = response.read()
            except _DROPPED:
                self.runtime_exits += 1
                log.warning("function %s: its process died during the invocation", name_or_arn)
                return InvocationResult(_runtime_exited(), "Unhandled")
            finally:
                conn.close()
            return _result(name_or_arn, response, data)


def _runtime_exited() -> dict[str, Any]:
    request_id = str(uuid.uuid4())
    return {
        "errorType": "Lambda.Unknown",
        "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: signal: killed",
        "trace": ["Runtime.ExitError"],
    }


def _result(function: str, response: http.client.HTTPResponse, data: bytes) -> InvocationResult:
    if response.status == 404:
        raise FunctionNotFound(function)
    if response.status != 200:
        raise FunctionUnavailable(f"{function}: the hub process answered {response.status}")
    payload = json.loads(data) if data else None
    return InvocationResult(payload, response.getheader("X-Amz-Function-Error"))


def lambda_front(*, host: str, port: int, moto_port: int, hub_aws_port: int) -> Gateway:
    """The endpoint moto's interpreter calls (its MOTO_PORT): Invoke to the hub process, the rest to moto."""
    return Gateway(host=host, port=port, moto_port=moto_port, runtime=RemoteFunctions(host, hub_aws_port))
