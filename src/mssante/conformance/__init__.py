"""The API LPS conformance suite: a local, scriptable equivalent of the ANS test tool MOTCO2.

It runs a catalogue of cases, keyed by Référentiel #2 requirement (ECO.x.y.z, with the Ségur
REM SC.MSS/CONF.nn ids), against the sandbox operator (:mod:`mssante.sandbox`). Each case
drives the sandbox (fault injection, messages delivered to the BAL under test), asks the LPS
to act through an :class:`LPSDriver`, and judges **only** from what the operator saw: the
session journal (TLS facts, SASL exchanges, commands) and the messages the LPS submitted,
checked with :func:`mssante.message.check_message`.

* :func:`catalogue` / :func:`select_cases` — the cases of a profile (``per-org`` or ``app``);
* :func:`run_job` — the référencement job: a whole profile, in order, as one report;
* :class:`InProcessControl` / :class:`HTTPControl` — drive a sandbox of this process, or a
  running one through its ``/api``;
* :class:`ExternalDriver` — any LPS (French instructions, bounded waits for evidence);
  :func:`load_builtin_driver` — our client library, once it provides
  ``mssante.conformance.builtin:create_driver``;
* :class:`RunEvents` — the machine-readable run (``--events``, JSON Lines, schema in
  ``docs/schemas/conformance-events.schema.json``), also served by the sandbox API;
* :func:`to_html`, :func:`to_json`, :func:`to_junit` — the "CR de test".

Layering: this package sits on top of the sandbox and the message toolkit; nothing imports it.
"""

from mssante.conformance._catalogue import catalogue, select_cases
from mssante.conformance._context import CaseContext, RunSettings
from mssante.conformance._control import InProcessControl, MessageSummary, SandboxControl
from mssante.conformance._driver import (
    BUILTIN_FACTORY,
    DocumentKind,
    DriverSetup,
    ExternalDriver,
    LookupRef,
    LPSDriver,
    PatientRef,
    SendRequest,
    Understood,
    load_builtin_driver,
)
from mssante.conformance._events import RunEvents
from mssante.conformance._html import to_html
from mssante.conformance._model import Case, CaseResult, Cause, Evidence, Profile, RunReport, Status, Verdict
from mssante.conformance._remote import HTTPControl
from mssante.conformance._reports import from_json, to_json, to_junit
from mssante.conformance._runner import LATEST_FILE, choose_bal, run_job, write_latest

__all__ = [
    "BUILTIN_FACTORY",
    "LATEST_FILE",
    "Case",
    "CaseContext",
    "CaseResult",
    "Cause",
    "DocumentKind",
    "DriverSetup",
    "Evidence",
    "ExternalDriver",
    "HTTPControl",
    "InProcessControl",
    "LPSDriver",
    "LookupRef",
    "MessageSummary",
    "PatientRef",
    "Profile",
    "RunEvents",
    "RunReport",
    "RunSettings",
    "SandboxControl",
    "SendRequest",
    "Status",
    "Understood",
    "Verdict",
    "catalogue",
    "choose_bal",
    "from_json",
    "load_builtin_driver",
    "run_job",
    "select_cases",
    "to_html",
    "to_json",
    "to_junit",
    "write_latest",
]
