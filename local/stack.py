"""The whole hub on one machine: moto, the AWS gateway, the HTTP API, event sources and schedules."""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local.hub_http import HubRequestHandler
from local.provision import ACCOUNT_ID, ROOT, Provisioned

log = logging.getLogger("local.stack")

APP_NAME = "order-hub"
STAGE = "local"
REGION = "us-east-1"
START_DEADLINE_SECONDS = 30


class StackError(RuntimeError):
    """The stack cannot start; the message says why and what to do."""


@dataclass(frozen=True)
class Ports:
    hub: int
    aws: int
    moto: int
    # Only for `python -m local moto`: the Lambda service front that outlives the hub process.
    lambda_front: int = 4568

    @classmethod
    def from_environ(cls, environ: dict[str, str]) -> Ports:
        return cls(
            hub=int(environ.get("HUB_PORT", "8000")),
            aws=int(environ.get("HUB_LOCAL_AWS_PORT", "4566")),
            moto=int(environ.get("HUB_LOCAL_MOTO_PORT", "4567")),
            lambda_front=int(environ.get("HUB_LOCAL_LAMBDA_PORT", "4568")),
        )


@dataclass
class Options:
    ports: Ports
    host: str = "127.0.0.1"
    operator_token: str = ""
    demo: bool = False
    # Tests shorten every queue's visibility timeout so retries and redrives happen in seconds.
    visibility_override: int | None = None
    # Count the requests each AWS service gets (GET /_local/counters on the AWS endpoint): bench/.
    counters: bool = False
    # Attach to a moto already running on the moto port (`python -m local moto`) instead of starting one:
    # the handler side can then be killed and restarted while the AWS state survives (bench/soak.py).
    external_moto: bool = False
    # Pollers per SQS event-source mapping (Lambda scales a mapping out; 1 keeps a run easy to follow).
    poller_concurrency: int = 1
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_environ(cls, environ: dict[str, str]) -> Options:
        visibility = environ.get("HUB_LOCAL_QUEUE_VISIBILITY_SECONDS")
        return cls(
            ports=Ports.from_environ(environ),
            host=environ.get("HUB_HOST", "127.0.0.1"),
            operator_token=environ.get("HUB_OPERATOR_TOKEN", ""),
            demo=environ.get("HUB_DEMO", "0") == "1",
            visibility_override=int(visibility) if visibility else None,
            counters=environ.get("HUB_LOCAL_COUNTERS", "0") == "1",
            external_moto=environ.get("HUB_LOCAL_EXTERNAL_MOTO", "0") == "1",
            poller_concurrency=int(environ.get("HUB_LOCAL_POLLER_CONCURRENCY", "1")),
        )


def ensure_free(host: str, port: int, variable: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers themselves do: connections in TIME_WAIT do not make a port busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise StackError(
                f"port {port} ({variable}) is already in use on {host}: stop whatever holds it "
                f"(`ss -ltnp 'sport = :{port}'` shows it) or set {variable} to a free port"
            ) from None


def moto_command(host: str, ports: Ports) -> list[str]:
    return [sys.executable, "-m", "local.moto_server", "-H", host, "-p", str(ports.moto)]


def moto_environment(ports: Ports, *, front: bool = False) -> dict[str, str]:
    """moto's Step Functions interpreter calls Lambda at http://localhost:$MOTO_PORT: the gateway's port, or
    with `front` the Lambda service front of `python -m local moto` (local/lambda_service.py)."""
    return {**os.environ, "MOTO_PORT": str(ports.lambda_front if front else ports.aws)}


def serve_aws_state(options: Options, stop: threading.Event) -> None:
    """`python -m local moto`: moto and the Lambda service front, in the foreground until `stop`; the hub
    process (`python -m local run` with HUB_LOCAL_EXTERNAL_MOTO=1) can die and start again meanwhile."""
    from local.lambda_service import lambda_front

    ports = options.ports
    ensure_free(options.host, ports.moto, "HUB_LOCAL_MOTO_PORT")
    ensure_free(options.host, ports.lambda_front, "HUB_LOCAL_LAMBDA_PORT")
    moto = subprocess.Popen(
        moto_command(options.host, ports),
        cwd=ROOT,
        env=moto_environment(ports, front=True),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, no locks involved
        start_new_session=True,
    )
    front = lambda_front(
        host=options.host, port=ports.lambda_front, moto_port=ports.moto, hub_aws_port=ports.aws
    )
    front.start()
    try:
        _wait_for(f"http://{options.host}:{ports.moto}/moto-api/", time.monotonic() + 30, "moto")
        log.info("moto on %s, Lambda service front on %s", ports.moto, ports.lambda_front)
        while not stop.wait(0.5):
            if moto.poll() is not None:
                raise StackError(f"moto exited with {moto.returncode}")
    finally:
        front.stop()
        moto.terminate()
        try:
            moto.wait(timeout=5)
        except subprocess.TimeoutExpired:
            moto.kill()
            moto.wait()


def _die_with_parent() -> None:
    # Linux: the child gets SIGTERM if this process dies, even by SIGKILL; nothing is left behind.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def _wait_for(url: str, deadline: float, what: str, method: str = "GET") -> None:
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=2):
                return
        except OSError as exc:
            last = exc
            time.sleep(0.05)
    raise StackError(f"{what} did not answer at {url} in time: {last}")


class LocalStack:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.stop_event = threading.Event()
        self._moto: subprocess.Popen[bytes] | None = None
        self._stoppers: list[Callable[[], None]] = []
        self.provisioned: Provisioned | None = None
        self.gateway: Any = None
        self.scheduler: Any = None
        self.pollers: list[Any] = []
        self.channels: Any = None

    @property
    def hub_url(self) -> str:
        return f"http://{self.options.host}:{self.options.ports.hub}"

    @property
    def aws_url(self) -> str:
        return f"http://{self.options.host}:{self.options.ports.aws}"

    def start(self) -> None:
        started = time.monotonic()
        deadline = started + START_DEADLINE_SECONDS
        opts = self.options
        ports = [(opts.ports.hub, "HUB_PORT"), (opts.ports.aws, "HUB_LOCAL_AWS_PORT")]
        if not opts.external_moto:
            ports.append((opts.ports.moto, "HUB_LOCAL_MOTO_PORT"))
        for port, variable in ports:
            ensure_free(opts.host, port, variable)
        if not opts.operator_token:
            opts.operator_token = secrets.token_urlsafe(24)
        try:
            self._start_moto(deadline)
            self._configure_process_env()
            self._start_gateway_and_provision()
            if opts.demo:
                self._start_demo_channels()
            self._provision_settings()
            self._start_app()
            if self.channels is not None:
                self.channels.register(self.hub_url, opts.operator_token)
        except BaseException:
            self.stop()
            raise
        log.info("stack ready in %.1f s", time.monotonic() - started)

    def _start_moto(self, deadline: float) -> None:
        ports = self.options.ports
        if not self.options.external_moto:
            # The Step Functions interpreter inside moto calls http://localhost:$MOTO_PORT: our gateway.
            self._moto = subprocess.Popen(
                moto_command(self.options.host, ports),
                cwd=ROOT,
                env=moto_environment(ports),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, no locks involved
                # Its own session: Ctrl-C reaches only us, and we stop moto last, after its clients.
                start_new_session=True,
            )
        moto_url = f"http://{self.options.host}:{ports.moto}"
        _wait_for(f"{moto_url}/moto-api/", deadline, "moto")
        request = urllib.request.Request(
            f"{moto_url}/moto-api/config",
            data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5):
            pass

    def _configure_process_env(self) -> None:
        # What Lambda's environment would hold; set before the app is imported.
        os.environ.update(
            {
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "AWS_ENDPOINT_URL": self.aws_url,
                "HUB_LOCAL": "1",
                # The simulators listen on loopback: the hub may call private hosts here, never in AWS.
                "HUB_ALLOW_PRIVATE_HOSTS": "1",
                "HUB_STAGE": STAGE,
                # Runtime settings cached for seconds, not a minute: a change written straight to the
                # store (not through the API, which clears this process's cache) shows up soon.
                "HUB_LOCAL_SETTINGS_MAX_AGE": os.environ.get("HUB_LOCAL_SETTINGS_MAX_AGE", "5"),
                "HUB_OPERATOR_TOKEN": self.options.operator_token,
                "POWERTOOLS_SERVICE_NAME": APP_NAME,
                "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
                # EMF metric lines are for CloudWatch; locally they would drown the console.
                "POWERTOOLS_METRICS_DISABLED": os.environ.get("POWERTOOLS_METRICS_DISABLED", "true"),
                **self.options.extra_env,
            }
        )

    def _boto(self, service: str) -> Any:
        import boto3

        return boto3.session.Session().client(service, region_name=REGION, endpoint_url=self.aws_url)

    def _start_gateway_and_provision(self) -> None:
        from local.counters import RequestCounter
        from local.gateway import Gateway
        from local.lambda_runtime import LambdaRuntime
        from local.provision import provision

        self._runtime_holder: dict[str, LambdaRuntime] = {}
        self._runtime_loaded = threading.Event()
        self.gateway = Gateway(
            host=self.options.host,
            port=self.options.ports.aws,
            moto_port=self.options.ports.moto,
            runtime=_DeferredRuntime(self._runtime_holder, self._runtime_loaded),
            control={
                "/_local/schedules/": self._fire_schedule,
                "/_local/status": self._status,
                "/_local/event-sources/": self._event_sources,
            },
            counter=RequestCounter() if self.options.counters else None,
        )
        self.gateway.start()
        self._stoppers.append(self.gateway.stop)
        self.provisioned = provision(
            self._boto,
            region=REGION,
            stage=STAGE,
            operator_token=self.options.operator_token,
            visibility_override=self.options.visibility_override,
        )
        os.environ.update(self.provisioned.environment)

    def _provision_settings(self) -> None:
        """The runtime settings store (SSM in moto) with every setting's default, or its seed from the
        environment (HUB_FRAUD_POLICY, ...: local/provision.py SETTING_SEEDS), as the CDK stack makes it."""
        from chalicelib.settings import settings_path
        from local.provision import provision_settings, setting_seeds

        try:
            seeds = setting_seeds(dict(os.environ))
        except ValueError as exc:
            raise StackError(str(exc)) from None
        path = settings_path(STAGE)
        provision_settings(self._boto("ssm"), path, seeds)
        os.environ["HUB_SETTINGS_PATH"] = path

    def _start_demo_channels(self) -> None:
        from local.demo_channels import DemoChannels

        assert self.provisioned is not None
        from chalicelib import resources

        self.channels = DemoChannels(
            host=self.options.host,
            hub_url=self.hub_url,
            sqs=self._boto("sqs"),
            amazon_queue_url=self.provisioned.queue_urls[resources.AMAZON_NOTIFICATIONS_QUEUE.name],
        )
        self.channels.start()
        self._stoppers.append(self.channels.stop)
        # The hub talks to the simulators, unless the user pointed a channel elsewhere.
        for name, value in self.channels.environment().items():
            os.environ.setdefault(name, value)
        # Seeds of the runtime settings (unless the caller seeds them): demo orders are small, so a lower
        # value threshold sends some of them to the fraud review; demo customers pay with Stripe's few test
        # cards (one fingerprint each), so card velocity is left out.
        os.environ.setdefault(
            "HUB_FRAUD_POLICY",
            '{"weights": {"high_value": 45}, "high_value": {"EUR": "250", "USD": "250", "GBP": "250"},'
            ' "velocity": {"card": {"1h": 100000}}}',
        )
        # Declined demo payments wait a minute for a new card (48 hours by default), then are cancelled.
        os.environ.setdefault("HUB_PAYMENT_RECOVERY_SECONDS", "60")

    def _start_app(self) -> None:
        from chalice.app import ScheduledEventConfig, SQSEventConfig
        from chalice.config import Config
        from chalice.local import LocalDevServer

        from local.event_sources import SqsPoller
        from local.lambda_runtime import LambdaRuntime
        from local.scheduler import Scheduler

        sys.path.insert(0, str(ROOT))
        from app import app

        runtime = LambdaRuntime(app, app_name=APP_NAME, stage=STAGE)
        self._runtime_holder["runtime"] = runtime
        self._runtime_loaded.set()
        assert self.provisioned is not None
        schedules: dict[str, Any] = {}
        for source in app.event_sources:
            if isinstance(source, SQSEventConfig):
                if source.queue is None or source.queue not in self.provisioned.queue_urls:
                    raise StackError(f"{source.name} listens to an unknown queue {source.queue}")
                self.pollers.append(
                    SqsPoller(
                        sqs=self._boto("sqs"),
                        runtime=runtime,
                        function=source.name,
                        queue_url=self.provisioned.queue_urls[source.queue],
                        batch_size=source.batch_size,
                        region=REGION,
                        stop=self.stop_event,
                        concurrency=self.options.poller_concurrency,
                    )
                )
            elif isinstance(source, ScheduledEventConfig):
                schedules[source.name] = source.schedule_expression
            else:
                raise StackError(f"the local stack cannot play {type(source).__name__} yet")
        for poller in self.pollers:
            poller.start()
        self.scheduler = Scheduler(
            runtime,
            schedules,
            region=REGION,
            account=ACCOUNT_ID,
            stop=self.stop_event,
            every_s=self.channels.schedule_cadence() if self.channels is not None else None,
        )
        self.scheduler.start()

        config = Config.create(
            chalice_stage=STAGE, app_name=APP_NAME, lambda_timeout=30, lambda_memory_size=256
        )
        server = LocalDevServer(
            _thread_local_requests(app),
            config,
            self.options.host,
            self.options.ports.hub,
            handler_cls=HubRequestHandler,
        )
        thread = threading.Thread(target=server.serve_forever, name="hub-http", daemon=True)
        thread.start()
        self._stoppers.append(server.shutdown)

    def _fire_schedule(self, path: str, body: bytes) -> tuple[int, Any]:
        """`<name>` runs a schedule now; `<name>/pause` and `<name>/resume` turn its cadence off and on."""
        name, _, action = path.partition("/")
        if self.scheduler is None or name not in self.scheduler.schedules:
            return 404, {"message": f"no schedule named {name!r}"}
        if action in ("pause", "resume"):
            getattr(self.scheduler, action)(name)
            return 200, {"function": name, "paused": action == "pause"}
        if action:
            return 404, {"message": f"POST /_local/schedules/{name}[/pause|/resume]"}
        result = self.scheduler.fire(name)
        return 200, {"function": name, "payload": result.payload, "error": result.function_error}

    def _event_sources(self, action: str, body: bytes) -> tuple[int, Any]:
        """`pause` or `resume` every SQS mapping, as disabling and enabling them in Lambda would."""
        if action not in ("pause", "resume"):
            return 404, {"message": "POST /_local/event-sources/pause or /resume"}
        for poller in self.pollers:
            if action == "pause":
                poller.pause()
            else:
                poller.resume()
        return 200, {"event_sources": [p.function for p in self.pollers], "paused": action == "pause"}

    def _status(self, _: str, body: bytes) -> tuple[int, Any]:
        runtime = self._runtime_holder.get("runtime")
        return 200, {
            "event_sources": {p.function: p.stats.as_dict() for p in self.pollers},
            "schedules": self.scheduler.status() if self.scheduler else {},
            "invocations": dict(runtime.invocations) if runtime else {},
            "invocation_seconds": dict(runtime.seconds) if runtime else {},
        }

    def stop(self) -> None:
        self.stop_event.set()
        for poller in self.pollers:
            poller.join(timeout=5)
        if self.scheduler is not None:
            self.scheduler.join(timeout=5)
        for stopper in reversed(self._stoppers):
            with contextlib.suppress(Exception):
                stopper()
        self._stoppers.clear()
        if self._moto is not None and self._moto.poll() is None:
            self._moto.terminate()
            try:
                self._moto.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._moto.kill()
                self._moto.wait()
        self._moto = None


def _thread_local_requests(app: Any) -> Any:
    """Chalice's own trick (chalice.local): current_request per thread, for a threaded server."""
    from chalice.local import CustomLocalChalice, LocalChalice

    CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
    app.__class__ = CustomLocalChalice
    return app


class _DeferredRuntime:
    """Lets the gateway start (for provisioning) before the app and its functions are loaded. An Invoke that
    arrives meanwhile (moto surviving a restart of this process runs its executions on) waits for the
    functions, as Lambda holds an invocation while it starts an execution environment."""

    def __init__(self, holder: dict[str, Any], loaded: threading.Event) -> None:
        self._holder = holder
        self._loaded = loaded

    def __getattr__(self, name: str) -> Any:
        from local.lambda_runtime import FunctionNotFound

        runtime = self._holder.get("runtime")
        if runtime is None and name in ("resolve", "invoke"):
            self._loaded.wait(START_DEADLINE_SECONDS)
            runtime = self._holder.get("runtime")
        if runtime is None:
            if name == "resolve":

                def not_loaded(function: str) -> str:
                    raise FunctionNotFound(function)

                return not_loaded
            raise AttributeError(name)
        return getattr(runtime, name)
