"""`python -m local run`: start the local stack in the foreground until Ctrl-C (or SIGTERM).

`python -m local moto`: only moto (HUB_LOCAL_MOTO_PORT) and the Lambda service front its Step Functions
interpreter invokes through (HUB_LOCAL_LAMBDA_PORT), in the foreground, for a `run` started with
HUB_LOCAL_EXTERNAL_MOTO=1 (same ports): that `run` can then be killed and started again while the AWS state
and the Lambda service survive, as they survive a Lambda crash in AWS (bench/soak.py does)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from local.stack import LocalStack, Options, StackError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local")
    parser.add_argument("command", choices=["run", "moto"])
    command = parser.parse_args(argv).command
    logging.basicConfig(
        level=os.environ.get("HUB_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("botocore", "pynamodb", "stripe"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    options = Options.from_environ(dict(os.environ))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if command == "moto":
        from local.stack import serve_aws_state

        try:
            serve_aws_state(options, stop)
        except StackError as exc:
            print(f"order-hub: {exc}", file=sys.stderr)
            return 2
        return 0
    token_was_set = bool(options.operator_token)
    stack = LocalStack(options)
    try:
        stack.start()
    except StackError as exc:
        print(f"order-hub: {exc}", file=sys.stderr)
        return 2
    _banner(stack, token_was_set)
    demo = None
    if options.demo:
        from local.demo import DemoTraffic

        demo = DemoTraffic(stack.hub_url, options.operator_token, channels=stack.channels, stop=stop)
        demo.start()
    stop.wait()
    print("\norder-hub: stopping...", flush=True)
    stack.stop()
    if demo is not None:
        demo.join(timeout=5)
    print("order-hub: stopped, nothing left running", flush=True)
    return 0


def _banner(stack: LocalStack, token_was_set: bool) -> None:
    token = stack.options.operator_token
    lines = [
        "",
        "order-hub local stack is up",
        f"  status page    {stack.hub_url}/status   (sign in with the operator token)",
        f"  hub API        {stack.hub_url}   (health: {stack.hub_url}/health)",
        f"  AWS endpoint   {stack.aws_url}   (moto + in-process Lambda)",
        # A token the operator set is theirs already: never echoed (the banner goes to logs too).
        "  operator token from HUB_OPERATOR_TOKEN"
        if token_was_set
        else f"  operator token {token}   (generated; set HUB_OPERATOR_TOKEN to fix it)",
        *(
            [
                f"  simulators     shopify {stack.channels.shopify.url}, woocommerce "
                f"{stack.channels.woocommerce.url}, amazon {stack.channels.amazon.url}",
            ]
            if stack.channels is not None
            else []
        ),
        f"  try: curl -H 'Authorization: Bearer {'$HUB_OPERATOR_TOKEN' if token_was_set else token}' "
        f"{stack.hub_url}/api/orders",
        "  Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
