"""HTTP routes for registering the stores the hub listens to."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib.composition import services
from chalicelib.domain import connections as use_cases
from chalicelib.domain.errors import InvalidInput
from chalicelib.entrypoints.errors import http_errors, json_body

bp = Blueprint(__name__)


@bp.route("/api/connections", methods=["POST"], content_types=["application/json"])
@http_errors
def create_connection() -> Response:
    body = json_body(bp.current_request)
    if not isinstance(body, dict):
        raise InvalidInput("body must be a JSON object")
    svc = services()
    connection, created = use_cases.register(
        body,
        connections=svc.connections,
        secrets=svc.secrets,
        secret_prefix=svc.secret_prefix,
        now=svc.now,
        allow_private_hosts=svc.settings.allow_private_hosts,
    )
    return Response(body=connection.to_json(), status_code=201 if created else 200)


@bp.route("/api/connections", methods=["GET"])
def list_connections() -> dict[str, Any]:
    found = sorted(services().connections.list(), key=lambda c: (c.channel, c.store))
    return {"connections": [c.to_json() for c in found]}


@bp.route("/api/connections/{connection_id}", methods=["DELETE"])
@http_errors
def delete_connection(connection_id: str) -> Response:
    svc = services()
    use_cases.remove(connection_id, connections=svc.connections, secrets=svc.secrets)
    return Response(body="", status_code=204)
