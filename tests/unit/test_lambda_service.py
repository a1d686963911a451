"""The Lambda service front (`python -m local moto`): functions whose process dies are reported as Lambda
reports them, and a process on its way is waited for; the workflows retry what that produces."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from chalice import Chalice

from local.gateway import Gateway
from local.lambda_runtime import LambdaRuntime
from local.lambda_service import lambda_front

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Dies(BaseHTTPRequestHandler):
    """A hub process killed while running the function: it reads the request and answers nothing."""

    protocol_version = "HTTP/1.1"
    received = threading.Event()

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).received.set()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


def lambda_client(url: str):
    return boto3.client(
        "lambda", endpoint_url=url, region_name="us-east-1", aws_access_key_id="a",
        aws_secret_access_key="b", config=Config(retries={"total_max_attempts": 1}),
    )  # fmt: skip


def hub_gateway(port: int) -> Gateway:
    app = Chalice(app_name="t")

    @app.lambda_function(name="echo")
    def echo(event, context):
        return {"echo": event}

    runtime = LambdaRuntime(app, app_name="order-hub", stage="local")
    return Gateway(host="127.0.0.1", port=port, moto_port=free_port(), runtime=runtime)


def test_a_function_whose_process_dies_under_it_fails_as_lambda_unknown():
    dying = ThreadingHTTPServer(("127.0.0.1", 0), Dies)
    threading.Thread(target=dying.serve_forever, daemon=True).start()
    front = lambda_front(
        host="127.0.0.1", port=0, moto_port=free_port(), hub_aws_port=dying.server_address[1]
    )
    front.start()
    try:
        answer = lambda_client(front.url).invoke(FunctionName="echo", Payload=b'{"n": 1}')
        assert Dies.received.is_set()
        assert answer["StatusCode"] == 200
        assert answer["FunctionError"] == "Unhandled"
        payload = json.loads(answer["Payload"].read())
        assert payload["errorType"] == "Lambda.Unknown"
        assert "Runtime exited" in payload["errorMessage"]
        assert front.runtime.runtime_exits == 1  # type: ignore[attr-defined]
    finally:
        front.stop()
        dying.shutdown()
        dying.server_close()


def test_an_invocation_waits_for_the_process_on_its_way_and_runs_there():
    port = free_port()
    front = lambda_front(host="127.0.0.1", port=0, moto_port=free_port(), hub_aws_port=port)
    front.start()
    hub: list[Gateway] = []
    answers: list[dict] = []
    caller = threading.Thread(
        target=lambda: answers.append(lambda_client(front.url).invoke(FunctionName="echo", Payload=b"7"))
    )
    try:
        caller.start()  # nothing listens on the hub's port yet: the front waits for it
        hub.append(hub_gateway(port))
        hub[0].start()
        caller.join(timeout=30)
        assert answers, "the invocation never came back"
        assert "FunctionError" not in answers[0]
        assert json.loads(answers[0]["Payload"].read()) == {"echo": 7}
    finally:
        front.stop()
        for gateway in hub:
            gateway.stop()


def test_no_process_in_time_is_a_service_exception_the_workflows_retry():
    front = lambda_front(host="127.0.0.1", port=0, moto_port=free_port(), hub_aws_port=free_port())
    front.runtime.start_wait_s = 0.3  # type: ignore[attr-defined]
    front.start()
    try:
        with pytest.raises(ClientError) as raised:
            lambda_client(front.url).invoke(FunctionName="echo", Payload=b"{}")
        assert raised.value.response["Error"]["Code"] == "ServiceException"
    finally:
        front.stop()


@pytest.mark.parametrize("machine", ["order_lifecycle", "order_return"])
def test_every_task_retries_lambdas_transient_failures_and_a_dead_runtime(machine):
    definition = json.loads((ROOT / "step_functions" / f"{machine}.asl.json").read_text())
    transient = {
        "Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException", "Lambda.Unknown",
    }  # fmt: skip

    def tasks(states):
        for name, state in states.items():
            if state["Type"] == "Task":
                yield name, state
            for branch in state.get("Branches", []):
                yield from tasks(branch["States"])
            if state["Type"] == "Map":
                yield from tasks(state.get("ItemProcessor", state.get("Iterator"))["States"])

    checked = 0
    for name, state in tasks(definition["States"]):
        retried = set().union(*(set(r["ErrorEquals"]) for r in state.get("Retry", [])))
        assert "States.ALL" in retried or transient <= retried, name
        checked += 1
    assert checked >= 8
