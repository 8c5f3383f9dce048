"""The OpenAPI 3.1 description of the bridge API, written by hand (served at ``/openapi.json``)."""

from __future__ import annotations

from typing import Any

from mssante._version import __version__
from mssante.bridge._delegation import delegation_paths

__all__ = ["openapi_document"]


def _error(description: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/Error"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_SESSION = [{"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}]
_BOTH: list[dict[str, list[str]]] = [{"installation": [], "session": []}]
_INSTALLATION: list[dict[str, list[str]]] = [{"installation": []}]
_COMMON = {"401": _error("installation credentials missing or wrong"), "429": _error("rate limited (Retry-After)")}
#: Every body is at most 16 KiB (refused before it is read) and never multipart.
_BODY = {"413": _error("too_large: the body exceeds 16 KiB"),
         "415": _error("unsupported_media_type: not the documented content type")}


def openapi_document(base_url: str) -> dict[str, Any]:
    """Return the OpenAPI document for a bridge reachable at ``base_url``."""
    token = {"type": "object", "required": ["access_token", "token_type", "expires_in"], "properties": {
        "access_token": {"type": "string"}, "token_type": {"const": "Bearer"}, "expires_in": {"type": "integer"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "mssante PSC bridge", "version": __version__,
                 "description": "Intermediate server between thick MSSanté clients and Pro Santé Connect."},
        "servers": [{"url": base_url}],
        "components": {
            "securitySchemes": {
                "installation": {"type": "http", "scheme": "basic",
                                 "description": "installation id and secret (mssante bridge add-installation)"},
                "session": {"type": "apiKey", "in": "header", "name": "X-Session-Secret"},
            },
            "schemas": {"Error": {"type": "object", "required": ["error", "message"], "properties": {
                "error": {"type": "string"}, "message": {"type": "string"}}}},
        },
        "paths": {
            "/health": {"get": {"summary": "Liveness and store status", "responses": {"200": _json("ok", {
                "type": "object"})}}},
            "/logins": {"post": {
                "summary": "Start a login (browser flow or CIBA)", "security": _INSTALLATION,
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
                    {"type": "object", "required": ["method"], "properties": {"method": {"const": "browser"}}},
                    {"type": "object", "required": ["method", "national_id"], "properties": {
                        "method": {"const": "ciba"}, "national_id": {"type": "string"},
                        "binding_message": {"type": "string", "maxLength": 20},
                        "channel": {"enum": ["CARD", "MOBILE"]}}}]}}}},
                "responses": {"201": _json("login started", {"type": "object", "properties": {
                    "login_id": {"type": "string"}, "authorization_url": {"type": "string"},
                    "binding_message": {"type": "string"}, "expires_in": {"type": "integer"}}}),
                    "400": _error("invalid request or PSC refusal"), **_COMMON, **_BODY}}},
            "/logins/{login_id}": {"get": {
                "summary": "Await a login's outcome (long poll, handed over once)", "security": _INSTALLATION,
                "parameters": [{"name": "login_id", "in": "path", "required": True, "schema": {"type": "string"}},
                               {"name": "wait", "in": "query", "schema": {"type": "number", "maximum": 60}}],
                "responses": {"200": _json("complete", {"type": "object", "properties": {
                    "status": {"const": "complete"}, "session_id": {"type": "string"},
                    "session_secret": {"type": "string"}, "subject": {"type": "string"}}}),
                    "202": _json("pending", {"type": "object"}),
                    "400": _error("login failed (expired_token, access_denied...)"),
                    "404": _error("unknown login"), **_COMMON}}},
            "/callback": {"get": {"summary": "OAuth redirect URI (browser)", "responses": {
                "200": {"description": "login finished"}, "400": _error("invalid_state or PSC error")}}},
            "/sessions/{session_id}/token": {"post": {
                "summary": "A valid access token (refreshed server side ahead of expiry)", "security": _BOTH,
                "parameters": _SESSION,
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {
                    "fresh": {"type": "boolean"}}}}}},
                "responses": {"200": _json("token", token), "404": _error("unknown session"),
                              "400": _error("the body is not a JSON object"), "410": _error("session_ended"),
                              "503": _error("refresh_failed (retry)"), **_COMMON, **_BODY}}},
            "/sessions/{session_id}/events": {"get": {
                "summary": "Server-sent events: ready, session_ended, refresh_failed", "security": _BOTH,
                "parameters": _SESSION,
                "responses": {"200": {"description": "event stream", "content": {"text/event-stream": {}}},
                              "404": _error("unknown session"), **_COMMON}}},
            "/sessions/{session_id}": {"delete": {
                "summary": "Log out (end session at PSC, revoke, emit session_ended)", "security": _BOTH,
                "parameters": _SESSION,
                "responses": {"204": {"description": "logged out"}, "404": _error("unknown session"), **_COMMON}}},
            "/backchannel-logout": {"post": {
                "summary": "OIDC Back-Channel Logout receiver (called by PSC)",
                "requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": {
                    "type": "object", "required": ["logout_token"],
                    "properties": {"logout_token": {"type": "string"}}}}}},
                "responses": {"200": {"description": "sessions ended"}, "400": _error("invalid logout token or form"),
                              **_BODY}}},
            **delegation_paths(_error, _json, token),  # delegation to another installation: _delegation.py
        },
    }
