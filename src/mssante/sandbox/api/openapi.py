"""The OpenAPI 3.1 description of the sandbox API, built from one table of operations.

Each :class:`Operation` row names its path, method, parameters, success answer and error
codes; :func:`openapi_document` turns the table into the document served at
``/api/openapi.json``. A test checks that every route of :class:`~.routes.SandboxAPI` is in the
table, so the description cannot silently fall behind the code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from mssante._version import __version__
from mssante.wire import AuthOutcome

__all__ = ["OPERATIONS", "Operation", "openapi_document"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _array(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


_STR: Final = {"type": "string"}
_NSTR: Final = {"type": ["string", "null"]}
_INT: Final = {"type": "integer"}
_FINDING: Final = {
    "type": "object",
    "properties": {"severity": {"enum": ["error", "warning", "info"]}, "rule": _STR, "message": _STR},
}

SCHEMAS: Final[dict[str, Any]] = {
    "Error": {
        "type": "object", "required": ["error", "message"],
        "properties": {"error": {**_STR, "description": "stable machine code"}, "message": _STR},
    },
    "Finding": _FINDING,
    "Bal": {
        "type": "object",
        "properties": {
            "address": _STR, "kind": {"enum": ["PER", "ORG", "APP"]}, "holders": _array(_STR),
            "structure_id": _NSTR, "folders": _array(_STR),
            "counts": {"type": ["object", "null"], "additionalProperties": _INT,
                       "description": "messages per folder; null without a mailbox store"},
            "messages_url": _STR,
        },
    },
    "MSSHeaders": {
        "type": "object", "description": "X-MSS-NIL, X-MSS-CODECDA (list), X-MSS-INS, X-MSS-MES; null when absent",
        "properties": {"nil": _NSTR, "codecda": {"type": ["array", "null"], "items": _STR}, "ins": _NSTR,
                       "mes": _NSTR},
    },
    "Attachment": {
        "type": "object",
        "properties": {"index": _INT, "filename": _NSTR, "content_type": _STR,
                       "kind": {"enum": ["xdm", "pdf", "other"]}, "size": _INT},
    },
    "MessageSummary": {
        "type": "object",
        "properties": {
            "uid": _INT, "folder": _STR, "bal": _STR, "flags": _array(_STR), "internal_date": _NSTR, "size": _INT,
            "readable": {"type": "boolean"}, "error": _NSTR, "message_id": _NSTR, "subject": _NSTR, "date": _NSTR,
            "from": {"type": "object", "properties": {"address": _NSTR, "label": _NSTR,
                                                      "kind": {"enum": ["professional", "patient", "external",
                                                                        "unknown"]}}},
            "to": _array(_STR), "cc": _array(_STR), "mss": _ref("MSSHeaders"),
            "attachments": _array(_ref("Attachment")),
            "mdn_requested": {"type": "boolean"}, "report": {"enum": ["mdn", "dsn", None]},
            "xdm": {"type": ["object", "null"], "properties": {"documents": _INT,
                                                               "findings": _array(_ref("Finding"))}},
            "xdm_error": _NSTR,
            "check": {"type": "object", "properties": {"ok": {"type": ["boolean", "null"]},
                                                       "findings": _array(_ref("Finding"))}},
        },
    },
    "Message": {
        "allOf": [_ref("MessageSummary"), {
            "type": "object",
            "properties": {
                "headers": _array({"type": "array", "prefixItems": [_STR, _STR]}),
                "text": _NSTR, "html": _NSTR, "in_reply_to": _NSTR, "references": _array(_STR),
                "reply_to": _array(_STR), "mdn_to": _array(_STR), "end_of_exchange": {"type": "boolean"},
                "report": {"type": ["object", "null"], "description": "MDN (RFC 8098) or DSN (RFC 3464) fields"},
                "xdm": {"type": ["object", "null"], "description": "patient, documents, findings of IHE_XDM.ZIP"},
            },
        }],
    },
    "MessageList": {
        "type": "object",
        "properties": {"bal": _STR, "folder": _STR, "count": _INT, "messages": _array(_ref("MessageSummary"))},
    },
    "SessionRecord": {
        "type": "object", "description": "one IMAP/SMTP connection: TLS, SASL, commands (redacted), messages",
        "properties": {"id": _INT, "front": _STR, "protocol": _STR, "peer": _STR, "started_at": {"type": "number"},
                       "ended_at": {"type": ["number", "null"]}, "tls_version": _NSTR, "mechanism": _NSTR,
                       "bal": _NSTR, "auth_detail": _NSTR,
                       "auth_result": {"type": ["string", "null"], "enum": [*(o.value for o in AuthOutcome), None]},
                       "starttls_before_auth": {"type": ["boolean", "null"]},
                       "commands": _array({"type": "object"}), "messages": _array({"type": "object"})},
    },
    "Faults": {
        "type": "object",
        "properties": {"psc_unavailable": {"type": "boolean"}, "delay": {"type": "number"},
                       "pending_auth_failures": _INT, "bad_server_certificate": {"type": ["string", "null"]},
                       "token_gate": {"type": ["object", "null"], "description": "reject_next_token in force: "
                                      "bal, armed, refused, reused (refused token presented again)"},
                       "crl_outage": {"type": ["object", "null"], "description": "mode (503|timeout), requests"},
                       "tls_probe": {"type": ["string", "null"],
                                     "description": "the TLS probe served: old-tls|weak-suites"},
                       "live_sessions": _array({"type": "object"})},
    },
}


@dataclass(frozen=True, kw_only=True)
class Operation:
    """One documented operation."""

    path: str
    method: str
    summary: str
    params: tuple[tuple[str, str, bool, str], ...] = ()  # (name, in, required, description)
    response: dict[str, Any] | None = None
    media: str = "application/json"
    status: str = "200"
    errors: tuple[int, ...] = ()
    body: str | None = None


_BAL = ("address", "path", True, "BAL address (case-insensitive), e.g. marie.curie@mss.sandbox.test")
_UID = ("uid", "path", True, "IMAP UID in the folder")
_FOLDER = ("folder", "query", False, "INBOX (default), Sent, Drafts or Trash")

OPERATIONS: Final[tuple[Operation, ...]] = (
    Operation(path="/api/openapi.json", method="get", summary="This description", response={"type": "object"}),
    Operation(path="/api/health", method="get", summary="Liveness, domain, whether a mailbox store is attached",
              response={"type": "object"}),
    Operation(path="/api/bals", method="get", summary="Every test BAL with its message counts",
              response=_array(_ref("Bal"))),
    Operation(path="/api/bals/{address}", method="get", summary="One BAL", params=(_BAL,), response=_ref("Bal"),
              errors=(404,)),
    Operation(path="/api/bals/{address}", method="delete", summary="Reset a BAL: delete every message, keep folders",
              params=(_BAL,), response={"type": "object"}, errors=(404, 503)),
    Operation(path="/api/bals/{address}/messages", method="get",
              summary="Messages of a folder: envelope, X-MSS headers, attachments, XDM and rule findings",
              params=(_BAL, _FOLDER), response=_ref("MessageList"), errors=(404, 503)),
    Operation(path="/api/bals/{address}/messages", method="post",
              summary="Store a raw RFC 5322 message in a folder (no SMTP: a test shortcut)",
              params=(_BAL, _FOLDER), response={"type": "object"}, status="201", errors=(400, 404, 413, 503),
              body="message/rfc822"),
    Operation(path="/api/bals/{address}/messages/{uid}", method="get",
              summary="One message, parsed: headers, bodies, MDN/DSN report, XDM patient and documents",
              params=(_BAL, _UID, _FOLDER), response=_ref("Message"), errors=(404, 503)),
    Operation(path="/api/bals/{address}/messages/{uid}/raw", method="get", summary="The message as stored",
              params=(_BAL, _UID, _FOLDER), media="message/rfc822", errors=(404, 503)),
    Operation(path="/api/bals/{address}/messages/{uid}/attachments/{index}", method="get",
              summary="One attachment, decoded", media="application/octet-stream", errors=(404, 503),
              params=(_BAL, _UID, ("index", "path", True, "attachment index (see attachments[].index)"), _FOLDER)),
    Operation(path="/api/journal", method="get", summary="Session journal (JSON; JSON Lines with format=jsonl)",
              params=(("bal", "query", False, "only this BAL"),
                      ("front", "query", False, "e.g. imap-psc, smtp-authcli"),
                      ("since", "query", False, "epoch seconds or ISO 8601 date-time with offset"),
                      ("format", "query", False, "jsonl for JSON Lines")),
              response=_array(_ref("SessionRecord")), errors=(400,)),
    Operation(path="/api/events", method="get",
              summary="Server-sent events: message (new mail), expunge, journal (session records)",
              params=(("bal", "query", False, "only events about this BAL"),
                      ("kinds", "query", False, "comma-separated among message, expunge, journal")),
              media="text/event-stream", errors=(400, 404)),
    Operation(path="/api/conformance", method="get", summary="Last conformance results (conformance/latest.json)",
              params=(("profile", "query", False, "per-org or app: the last run of that profile"),),
              response={"type": "object"}, errors=(400, 404)),
    Operation(path="/api/conformance/events", method="get",
              summary="Conformance run events (docs/schemas/conformance-events.schema.json): long poll or SSE",
              params=(("after", "query", False, "sequence number already seen (default 0)"),
                      ("run_id", "query", False, "only this run's events"),
                      ("wait", "query", False, "seconds to wait for a new event (long poll, at most 60)"),
                      ("format", "query", False, "json (default: {next, events}), jsonl (X-Next header) or sse")),
              response={"type": "object"}, errors=(400,)),
    Operation(path="/api/conformance/events", method="post", summary="Publish one run event (the suite does)",
              response={"type": "object"}, status="201", errors=(400,), body="application/json"),
    Operation(path="/api/conformance/steps/{step}", method="get", summary="Whether the LPS acknowledged a step",
              params=(("step", "path", True, "the step id of a step event"),), response={"type": "object"}),
    Operation(path="/api/conformance/steps/{step}/done", method="post",
              summary="The LPS did the step (optional body {ok, detail}): the suite stops waiting early",
              params=(("step", "path", True, "the step id of a step event"),), response={"type": "object"},
              errors=(400,), body="application/json"),
    Operation(path="/api/faults", method="get", summary="Faults in force and live sessions", response=_ref("Faults")),
    Operation(path="/api/faults", method="post",
              summary="Inject faults: psc_unavailable, token_check_unavailable, delay, fail_auth, "
              " bad_server_certificate, reject_next_token {bal}, crl_outage (503|timeout|null),"
              " tls_probe (old-tls|weak-suites|null)",
              response=_ref("Faults"), errors=(400,), body="application/json"),
    Operation(path="/api/faults", method="delete", summary="Clear every fault", response=_ref("Faults")),
    Operation(path="/api/sessions/{bal}", method="delete", summary="End live IMAP/SMTP sessions of a BAL (* = all)",
              params=(("bal", "path", True, "BAL address or *"), ("mode", "query", False, "bye (default) or drop")),
              response={"type": "object"}, errors=(400,)),
    Operation(path="/api/tls/handshakes", method="get",
              summary="TLS handshakes of the fronts with the server name (SNI) each carried, null when none",
              params=(("since", "query", False, "epoch seconds or ISO 8601 with offset"),),
              response={"type": "object"}, errors=(400,)),
    Operation(path="/api/tls/client-hellos", method="get",
              summary="ClientHellos the fronts received: offered versions and suites (IANA codes), SNI, probe",
              params=(("since", "query", False, "epoch seconds or ISO 8601 with offset"),),
              response={"type": "object"}, errors=(400,)),
    Operation(path="/api/dns/queries", method="get",
              summary="Queries the sandbox DNS answered: name, type, source, transport, rcode",
              params=(("since", "query", False, "epoch seconds or ISO 8601 with offset"),),
              response={"type": "object"}, errors=(400,)),
    Operation(path="/api/annuaire/access-log", method="get",
              summary="Requests the Annuaire Santé mock answered (never the API key): ECO.3.1.4 evidence",
              params=(("since", "query", False, "epoch seconds or ISO 8601 with offset"),),
              response={"type": "object"}, errors=(400,)),
    Operation(path="/api/psc/sessions/{national_id}", method="get",
              summary="PSC logins (new SSO sessions) of a professional since a time: {logins}",
              params=(("national_id", "path", True, "the professional's national id"),
                      ("since", "query", False, "epoch seconds or ISO 8601 with offset")),
              response={"type": "object"}, errors=(400, 404)),
    Operation(path="/api/psc/sessions/{national_id}", method="delete",
              summary="End every PSC session of a professional: back-channel logout, refresh tokens refused",
              params=(("national_id", "path", True, "the professional's national id"),),
              response={"type": "object"}, errors=(404,)),
)

_ERROR_TEXT: Final = {400: "Bad request", 404: "Unknown BAL, folder, message or path", 413: "Message too large",
                      503: "The sandbox runs without a mailbox store"}


def _operation(op: Operation) -> dict[str, Any]:
    content: dict[str, Any] = {op.media: {"schema": op.response or {"type": "string", "format": "binary"}}}
    out: dict[str, Any] = {
        "summary": op.summary,
        "operationId": f"{op.method}_{op.path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}",
        "parameters": [
            {"name": name, "in": where, "required": required, "description": text,
             "schema": _INT if name in ("uid", "index") else _STR}
            for name, where, required, text in op.params
        ],
        "responses": {op.status: {"description": "OK", "content": content}},
    }
    for code in (*op.errors, 500):
        out["responses"][str(code)] = {
            "description": _ERROR_TEXT.get(code, "Unexpected sandbox error"),
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": {op.body: {"schema": {"type": "string"}
                                                                     if op.body != "application/json"
                                                                     else {"type": "object"}}}}
    return out


def openapi_document(server_url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document, with ``server_url`` (``http://127.0.0.1:<port>``) as server."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "MSSanté sandbox operator API",
            "version": __version__,
            "description": "Drive the local MSSanté test operator and assert on what arrived in its BALs. "
                           "No authentication: the sandbox listens on loopback only. "
                           "Errors are JSON {error, message}.",
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }
