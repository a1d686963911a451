"""The local AWS endpoint's optional request counter, with a fake moto behind the gateway."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
import requests
from chalice import Chalice

from local.counters import RequestCounter, item_size, read_units
from local.gateway import Gateway
from local.lambda_runtime import LambdaRuntime

ITEM = {"pk": {"S": "ORDER#1"}, "sk": {"S": "ORDER"}, "total": {"N": "129.90"}, "paid": {"BOOL": True}}

# What the fake moto answers, by X-Amz-Target operation.
ANSWERS = {
    "CreateTable": {"TableDescription": {"TableName": "t"}},
    "PutItem": {},
    "UpdateItem": {},
    "GetItem": {"Item": ITEM},
    "TransactWriteItems": {},
    "ReceiveMessage": {},
    "SendMessage": {"MessageId": "m1", "MD5OfMessageBody": "0" * 32},
}


class FakeMoto(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        operation = self.headers["X-Amz-Target"].rsplit(".", 1)[-1]
        body = json.dumps(ANSWERS[operation]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def endpoint():
    moto = ThreadingHTTPServer(("127.0.0.1", 0), FakeMoto)
    threading.Thread(target=moto.serve_forever, daemon=True).start()
    app = Chalice(app_name="t")

    @app.lambda_function(name="echo")
    def echo(event, context):
        return event

    gateways = []

    def start(counter):
        gateway = Gateway(
            host="127.0.0.1",
            port=0,
            moto_port=moto.server_address[1],
            runtime=LambdaRuntime(app, app_name="order-hub", stage="local"),
            counter=counter,
        )
        gateway.start()
        gateways.append(gateway)
        return gateway.url

    yield start
    for gateway in gateways:
        gateway.stop()
    moto.shutdown()
    moto.server_close()


def client(service, url):
    return boto3.client(
        service, endpoint_url=url, region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )


def test_counters__count_each_service_and_operation_and_reset(endpoint):
    url = endpoint(RequestCounter())
    ddb, sqs = client("dynamodb", url), client("sqs", url)
    ddb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName="t", Item=ITEM)
    ddb.update_item(
        TableName="t",
        Key={"pk": ITEM["pk"], "sk": ITEM["sk"]},
        UpdateExpression="SET paid = :p",
        ExpressionAttributeValues={":p": {"BOOL": False}},
    )
    ddb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "DELIVERY#d"}, "sk": {"S": "DELIVERY"}}}},
            {
                "Update": {
                    "TableName": "t",
                    "Key": {"pk": ITEM["pk"], "sk": ITEM["sk"]},
                    "UpdateExpression": "SET a = :a",
                    "ExpressionAttributeValues": {":a": {"S": "x"}},
                }
            },
        ]
    )
    ddb.get_item(TableName="t", Key={"pk": ITEM["pk"], "sk": ITEM["sk"]})
    ddb.get_item(TableName="t", Key={"pk": ITEM["pk"], "sk": ITEM["sk"]}, ConsistentRead=True)
    queue = "http://127.0.0.1/123456789012/q"
    sqs.send_message(QueueUrl=queue, MessageBody="x")
    sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0)
    sqs.send_message(
        QueueUrl=queue + ".fifo", MessageBody="x", MessageGroupId="g", MessageDeduplicationId="d"
    )
    client("lambda", url).invoke(FunctionName="order-hub-local-echo", Payload=b"{}")

    counts = requests.get(f"{url}/_local/counters", timeout=5).json()
    assert counts["requests"]["dynamodb"] == {
        "CreateTable": 1,
        "PutItem": 1,
        "UpdateItem": 1,
        "TransactWriteItems": 1,
        "GetItem": 2,
    }
    assert counts["requests"]["sqs"] == {
        "SendMessage": 1,
        "ReceiveMessage (empty)": 1,
        "SendMessage [fifo]": 1,
    }
    assert counts["requests"]["lambda"] == {"Invoke": 1}
    writes = counts["dynamodb"]["writes"]["t"]
    order_key = json.dumps({"pk": ITEM["pk"], "sk": ITEM["sk"]}, sort_keys=True)
    assert writes[order_key] == {
        "writes": 3,
        "transactional": 1,
        "deletes": 0,
        "condition_checks": 0,
        "put_bytes": item_size(ITEM),
    }
    assert len(writes) == 2  # the order and the delivery marker
    assert counts["dynamodb"]["read_units"] == {"GetItem": 1.5}  # 0.5 eventually consistent + 1 strongly
    assert counts["dynamodb"]["read_items"] == {"GetItem": 2}

    before = requests.post(f"{url}/_local/counters/reset", timeout=5).json()
    assert before["requests"]["lambda"] == {"Invoke": 1}
    assert requests.get(f"{url}/_local/counters", timeout=5).json()["requests"] == {}
    ddb.put_item(TableName="t", Item=ITEM)  # the table's key schema survives a reset
    assert list(requests.get(f"{url}/_local/counters", timeout=5).json()["dynamodb"]["writes"]["t"]) == [
        order_key
    ]


def test_counters__off_unless_asked_for(endpoint):
    url = endpoint(None)
    client("sqs", url).send_message(QueueUrl="http://127.0.0.1/123456789012/q", MessageBody="x")
    answer = requests.get(f"{url}/_local/counters", timeout=5)
    assert answer.status_code == 404 and "HUB_LOCAL_COUNTERS=1" in answer.json()["message"]


def test_item_size_and_read_units__follow_dynamodbs_rules():
    # names + values: "pk" 2 + 7, "sk" 2 + 5, "total" 5 + (4 significant digits → 2 + 1), "paid" 4 + 1
    assert item_size(ITEM) == 9 + 7 + 8 + 5
    assert item_size({"m": {"M": {"a": {"S": "xy"}}}, "l": {"L": [{"NULL": True}]}}) == (
        1 + 3 + 1 + 1 + 2
    ) + (1 + 3 + 1 + 1)
    assert read_units(100, consistent=False) == 0.5
    assert read_units(4097, consistent=True) == 2.0
    assert read_units(100, consistent=True, transactional=True) == 2.0
