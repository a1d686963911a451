"""The local stack's moto (local/moto_server.py): a cancelled transaction leaves every item as it was, a
committed one applies every item, a definition is parsed once, DynamoDB requests are served one at a time."""

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.responses import DynamoHandler
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

from local.moto_server import (
    one_dynamodb_request_at_a_time,
    services_listed_once,
    share_parsed_definitions,
    sqs_reads_the_clock_cheaply,
    transactions_snapshot_their_items,
)


@pytest.fixture
def table():
    transactions_snapshot_their_items()
    with mock_aws():
        client = boto3.client(
            "dynamodb", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
        )
        client.create_table(
            TableName="t",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )  # fmt: skip
        client.put_item(TableName="t", Item={"pk": {"S": "A"}, "sk": {"S": "1"}, "v": {"N": "1"}})
        client.put_item(TableName="t", Item={"pk": {"S": "B"}, "sk": {"S": "1"}, "v": {"N": "1"}})
        yield client


A, B = {"pk": {"S": "A"}, "sk": {"S": "1"}}, {"pk": {"S": "B"}, "sk": {"S": "1"}}
SET_V = "SET v = :v"


def value(client, pk):
    item = client.get_item(TableName="t", Key={"pk": {"S": pk}, "sk": {"S": "1"}}).get("Item")
    return None if item is None else item["v"]["N"]


def test_a_cancelled_transaction_puts_back_what_it_had_changed(table):
    with pytest.raises(ClientError) as raised:
        table.transact_write_items(
            TransactItems=[
                {"Update": {"TableName": "t", "Key": A, "UpdateExpression": SET_V,
                             "ExpressionAttributeValues": {":v": {"N": "2"}}}},
                {"Put": {"TableName": "t", "Item": {"pk": {"S": "C"}, "sk": {"S": "1"}, "v": {"N": "9"}}}},
                {"Delete": {"TableName": "t", "Key": B, "ConditionExpression": "v = :two",
                            "ExpressionAttributeValues": {":two": {"N": "2"}}}},
            ]
        )  # fmt: skip
    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert (value(table, "A"), value(table, "B"), value(table, "C")) == ("1", "1", None)


def test_a_committed_transaction_applies_every_item(table):
    table.transact_write_items(
        TransactItems=[
            {"Update": {"TableName": "t", "Key": A, "UpdateExpression": SET_V,
                         "ExpressionAttributeValues": {":v": {"N": "2"}}}},
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "C"}, "sk": {"S": "1"}, "v": {"N": "9"}}}},
            {"Delete": {"TableName": "t", "Key": B, "ConditionExpression": "v = :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}}}},
        ]
    )  # fmt: skip
    assert (value(table, "A"), value(table, "B"), value(table, "C")) == ("2", None, "9")


def test_the_same_item_twice_is_refused_and_nothing_changes(table):
    key = {"pk": {"S": "A"}, "sk": {"S": "1"}}
    with pytest.raises(ClientError):
        table.transact_write_items(
            TransactItems=[
                {"Update": {"TableName": "t", "Key": key, "UpdateExpression": "SET v = :v",
                            "ExpressionAttributeValues": {":v": {"N": "5"}}}},
                {"Delete": {"TableName": "t", "Key": key}},
            ]
        )  # fmt: skip
    assert value(table, "A") == "1"


def test_a_definition_is_parsed_once_and_the_patches_apply_once():
    share_parsed_definitions()
    share_parsed_definitions()
    definition = '{"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}'
    first = AmazonStateLanguageParser.parse(definition)
    assert AmazonStateLanguageParser.parse(definition) is first
    one_dynamodb_request_at_a_time()
    serialised = DynamoHandler.call_action
    one_dynamodb_request_at_a_time()
    assert DynamoHandler.call_action is serialised


def test_sqs_reads_the_same_clock_cheaply():
    import time

    import moto.sqs.models as sqs_models

    sqs_reads_the_clock_cheaply()
    sqs_reads_the_clock_cheaply()
    now = sqs_models.unix_time_millis()
    assert abs(now - time.time() * 1000) < 1000
    assert getattr(sqs_models.unix_time_millis, "cheap", False)


def test_the_services_are_listed_once():
    import moto.backends as moto_backends

    services_listed_once()
    services_listed_once()
    assert {"dynamodb", "sqs", "stepfunctions"} <= set(moto_backends.list_of_moto_modules())
    assert moto_backends.list_of_moto_modules() is moto_backends.list_of_moto_modules()
