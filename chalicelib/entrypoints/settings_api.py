"""HTTP routes for the runtime settings (business policies): read, change (validated, versioned, audited)
and each one's history. Behind the operator token like the rest of /api."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.composition import services
from chalicelib.domain import runtime_settings as use_cases
from chalicelib.entrypoints.auth import operator_label
from chalicelib.entrypoints.errors import http_errors, json_body

bp = Blueprint(__name__)


@bp.route("/api/settings", methods=["GET"])
@http_errors
def list_settings() -> dict[str, Any]:
    store, _ = services().runtime_settings()
    return {"settings": use_cases.read_settings(store)}


@bp.route("/api/settings/{name}", methods=["GET"])
@http_errors
def get_setting(name: str) -> dict[str, Any]:
    store, _ = services().runtime_settings()
    return use_cases.read_one(name, store)


@bp.route("/api/settings/{name}", methods=["PUT"], content_types=["application/json"])
@http_errors
def put_setting(name: str) -> dict[str, Any]:
    svc = services()
    store, audit = svc.runtime_settings()
    request = bp.current_request
    by = operator_label(request.headers.get("authorization"))
    return use_cases.change_setting(name, json_body(request), store=store, audit=audit, by=by, now=svc.now)


@bp.route("/api/settings/{name}/history", methods=["GET"])
@http_errors
def setting_history(name: str) -> dict[str, Any]:
    store, audit = services().runtime_settings()
    return {"name": name, "versions": use_cases.setting_history(name, store=store, audit=audit)}
