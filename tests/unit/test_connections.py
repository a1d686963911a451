"""Connections: stores the hub listens to; secrets only ever in the secret store."""

import json

import pytest

from chalicelib.domain.connections import connection_id, credentials, normalise_store, register, remove
from chalicelib.domain.errors import InvalidInput, NotFound
from tests.fakes import InMemoryConnectionRepository, InMemorySecretStore
from tests.unit.api import AUTH

SHOPIFY = {
    "channel": "shopify",
    "store": "Demo-Shop.myshopify.com",
    "webhook_secret": "shpss_supersecret",
    "access_token": "shpat_token",
}


def test_normalise_store__one_spelling_per_store():
    assert normalise_store("shopify", "https://Demo.myshopify.com/admin") == "demo.myshopify.com"
    assert normalise_store("woocommerce", "https://Shop.Example.com") == "https://shop.example.com/"
    assert normalise_store("woocommerce", "http://shop.example:8080/wp") == "http://shop.example:8080/wp/"
    for bad in ("example.com", ".myshopify.com"):
        with pytest.raises(ValueError):
            normalise_store("shopify", bad)
    with pytest.raises(ValueError):
        normalise_store("woocommerce", "shop.example")


def _register(body, repo, store, now=lambda: __import__("datetime").datetime(2026, 11, 23)):
    return register(body, connections=repo, secrets=store, secret_prefix="order-hub/test/", now=now)


def test_register__secrets_go_to_the_secret_store_only():
    repo, store = InMemoryConnectionRepository(), InMemorySecretStore()
    connection, created = _register(SHOPIFY, repo, store)
    assert created and connection.store == "demo-shop.myshopify.com"
    assert connection.connection_id == connection_id("shopify", "demo-shop.myshopify.com")
    shown = json.dumps(connection.to_json())
    assert "supersecret" not in shown and "shpat" not in shown and "secret_ref" not in shown
    assert store.get(connection.secret_ref) == {
        "webhook_secret": "shpss_supersecret",
        "access_token": "shpat_token",
    }
    found = credentials("shopify", "DEMO-SHOP.myshopify.com", connections=repo, secrets=store)
    assert found is not None and found[1]["webhook_secret"] == "shpss_supersecret"


def test_register__again_rotates_the_secret_and_keeps_the_id():
    repo, store = InMemoryConnectionRepository(), InMemorySecretStore()
    first, _ = _register(SHOPIFY, repo, store)
    second, created = _register({**SHOPIFY, "webhook_secret": "rotated"}, repo, store)
    assert not created and second.connection_id == first.connection_id
    assert store.get(second.secret_ref)["webhook_secret"] == "rotated"


def test_register__bad_bodies_are_refused_without_echoing_secrets():
    repo, store = InMemoryConnectionRepository(), InMemorySecretStore()
    with pytest.raises(InvalidInput) as info:
        _register({**SHOPIFY, "store": "not-a-shop.example.com"}, repo, store)
    assert "myshopify.com" in str(info.value) and "supersecret" not in str(info.value)
    with pytest.raises(InvalidInput, match="channel"):
        _register({**SHOPIFY, "channel": "ebay"}, repo, store)
    with pytest.raises(InvalidInput, match="marketplace_id"):
        _register({"channel": "amazon", "store": "A1B2C3", "lwa_client_id": "a"}, repo, store)


def test_register__an_easypost_return_address_is_kept_as_json_and_an_absent_one_not_at_all():
    from chalicelib.integrations.easypost.returns import connection_return_address

    repo, store = InMemoryConnectionRepository(), InMemorySecretStore()
    easypost = {"channel": "easypost", "api_key": "EZTK1", "webhook_secret": "whsec"}
    bare, _ = _register(easypost, repo, store)
    assert bare.settings == {}
    address = {
        "line1": "5 Return Way",
        "city": "Reno",
        "region": "NV",
        "postal_code": "89501",
        "country": "US",
    }
    connection, _ = _register({**easypost, "return_address": address}, repo, store)
    found = connection_return_address(connection.settings)
    assert found is not None and found.model_dump(exclude_none=True) == address
    with pytest.raises(InvalidInput, match="return_address"):
        _register({**easypost, "return_address": {"street": "x"}}, repo, store)


def test_remove__deletes_connection_and_secret():
    repo, store = InMemoryConnectionRepository(), InMemorySecretStore()
    connection, _ = _register(SHOPIFY, repo, store)
    remove(connection.connection_id, connections=repo, secrets=store)
    assert repo.list() == [] and store.values == {}
    with pytest.raises(NotFound):
        remove(connection.connection_id, connections=repo, secrets=store)
    assert credentials("shopify", "demo-shop.myshopify.com", connections=repo, secrets=store) is None


def test_connections_api__create_list_delete(client):
    created = client.http.post("/api/connections", headers=AUTH, body=json.dumps(SHOPIFY))
    assert created.status_code == 201
    again = client.http.post("/api/connections", headers=AUTH, body=json.dumps(SHOPIFY))
    assert again.status_code == 200
    listed = client.http.get("/api/connections", headers=AUTH)
    assert "supersecret" not in listed.body.decode()
    [entry] = json.loads(listed.body)["connections"]
    assert entry["store"] == "demo-shop.myshopify.com"
    gone = client.http.delete(f"/api/connections/{entry['connection_id']}", headers=AUTH)
    assert gone.status_code == 204
    assert client.http.delete(f"/api/connections/{entry['connection_id']}", headers=AUTH).status_code == 404
    bad = client.http.post("/api/connections", headers=AUTH, body=json.dumps({"channel": "shopify"}))
    assert bad.status_code == 400
    assert client.http.get("/api/connections").status_code == 401
