"""The end-to-end demo: the whole system at work on one machine (``mssante demo``).

1. The sandbox operator starts (PKI, PSC, DNS, IMAP/SMTP fronts, webmail).
2. The intermediate server ("bridge") starts; a thick-client LPS logs Dr Marie CURIE in
   through it by CIBA, and opens her BAL PER with the tokens it hands out.
3. A hospital's DPI (a BAL APP, ORG AUTH_CLI certificate) sends her a CR de biologie in an
   IHE_XDM.ZIP with its PDF/A companion and asks for a read receipt; her LPS reads it,
   checks it and answers with an MDN.
4. Her LPS sends a VSM back to the DPI, which answers with an MDN too.
5. Her LPS writes to the auto-responders ``crbio-xdm@`` and ``vsm@``, which answer with XDM
   archives and MDNs.
6. The conformance suite judges our client (PER/ORG and APP profiles) in a sandbox of its
   own and writes its report (HTML, JSON, JUnit) under ``STATE_DIR/conformance``.

Everything prints as it happens, in the language in use (:mod:`mssante._i18n`: French by
default, English with ``--lang en``); the sandbox keeps serving (webmail) until interrupted,
or stops at once with ``once=True``. The demo's messages themselves are French, as a French
DPI and doctor would write them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn

from mssante._i18n import current, ngettext
from mssante._i18n import gettext as _
from mssante.bridge import Bridge, BridgeConfig, TokenCipher
from mssante.bridge.client import BridgeClient
from mssante.cda import generate_cr_bio, generate_vsm
from mssante.cli._progress import CaseProgress
from mssante.client import Backoff, Mailbox, MessageSummary, TrustSettings
from mssante.conformance import (
    DriverSetup,
    InProcessControl,
    Profile,
    RunSettings,
    Status,
    choose_bal,
    run_job,
    select_cases,
    to_html,
    to_json,
    to_junit,
    write_latest,
)
from mssante.conformance.builtin import DriverTuning, create_driver
from mssante.credentials import ClientCertificate, TokenSource
from mssante.discovery import DNSPythonResolver
from mssante.errors import MssanteError
from mssante.message import ComposeSettings, Draft, PdfCompanion, Sender, generate_mdn, pdf_filename
from mssante.pdf import render_cda_pdf
from mssante.psc import PSCSettings
from mssante.sandbox.config import SandboxConfig, default_config
from mssante.sandbox.runner import Sandbox
from mssante.xdm import build_archive

__all__ = ["DEMO_PRODUCT_REFERENCE", "SuiteOptions", "demo_config", "run_demo"]

DEMO_PRODUCT_REFERENCE = "DEMO000001"
PER = "marie.curie@{domain}"
DPI = "dpi.hopital@{domain}"
Say = Callable[[str], None]


def demo_config() -> SandboxConfig:
    """The default sandbox, with a CIBA approval of one second so the demo does not wait."""
    base = default_config()
    return replace(base, lifetimes=replace(base.lifetimes, ciba_approve_delay=1.0))


def _document(kind: str, now: datetime) -> tuple[bytes, PdfCompanion]:
    cda = generate_cr_bio(effective_time=now) if kind == "crbio" else generate_vsm(effective_time=now)
    label = "CR_d_examens_biologiques" if kind == "crbio" else "Synthese_medicale"
    name = pdf_filename(act_date=now.date(), document_type=label, family_name="PAT-TROIS", given_name="DOMINIQUE")
    return build_archive([cda], now=now), PdfCompanion(content=render_cda_pdf(cda, now=now), filename=name)


_WAIT = 30.0  # seconds an expected message may take to arrive


async def _wait_for(box: Mailbox, predicate: Callable[[MessageSummary], bool], *, seen: set[int]) -> MessageSummary:
    deadline = asyncio.get_running_loop().time() + _WAIT
    while True:
        for summary in await box.list("INBOX"):
            if summary.uid not in seen and predicate(summary):
                seen.add(summary.uid)
                return summary
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(_("the expected message did not arrive"))
        await asyncio.sleep(0.3)


async def _read_and_acknowledge(box: Mailbox, summary: MessageSummary, say: Say) -> None:
    received = await box.fetch(summary.uid, mark_seen=True)
    parsed = received.parsed
    mss = parsed.mss
    say("    " + _("received: “{subject}”").format(subject=parsed.subject))
    say(f"    X-MSS-NIL={mss.nil} X-MSS-CODECDA={','.join(mss.codecda or ())} X-MSS-INS={mss.ins}")
    if parsed.archive is not None:
        patient = parsed.archive.patient
        if patient is not None and patient.birth_date is not None:
            who = _("{family} {given}, born on {date}, INS {ins}").format(
                family=patient.family_name, given=patient.given_name,
                date=patient.birth_date.strftime(_("%m/%d/%Y")), ins=patient.ins)
        else:
            who = _("unknown")
        for doc in parsed.archive.documents:
            say("    " + _("document {path}: code {code} — patient {who}").format(path=doc.path, code=doc.cda_code,
                                                                                   who=who))
    if parsed.mdn_requested:
        settings = ComposeSettings(product_reference=DEMO_PRODUCT_REFERENCE)
        mdn = generate_mdn(parsed, reporter=box.address, settings=settings, disposition="displayed",
                           lang=current().lang)
        await box.send(mdn)
        say("    " + _("read receipt (MDN) sent"))


async def _serve_bridge(sb: Sandbox, state_dir: Path) -> tuple[Bridge, str, Callable[[], Awaitable[None]]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    config = BridgeConfig(psc=PSCSettings.from_sandbox(sb.info), store=f"sqlite:{state_dir / 'bridge.sqlite3'}",
                          host="127.0.0.1", port=port)
    bridge = Bridge(config, cipher=TokenCipher.generate())
    await bridge.__aenter__()
    server = uvicorn.Server(uvicorn.Config(bridge.app, log_level="warning", access_log=False, ws="none", http="h11",
                                           lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)

    async def stop() -> None:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        sock.close()
        await bridge.__aexit__(None, None, None)

    return bridge, f"http://127.0.0.1:{port}", stop


async def _exchange(sb: Sandbox, per: Mailbox, dpi: Mailbox, say: Say) -> None:
    domain = sb.config.domain
    now = datetime.now(UTC).replace(microsecond=0)
    per_seen: set[int] = set()
    dpi_seen: set[int] = set()

    say("\n" + _("3. The hospital's DPI (BAL APP) sends a CR de biologie to Dr CURIE, asking for a read receipt"))
    archive, pdf = _document("crbio", now)
    sent = await dpi.send(Draft(
        sender=Sender(address=dpi.address, label="DPI Centre hospitalier de test"), to=(per.address,),
        text="Bonjour Docteur,\n\nVeuillez trouver le compte rendu de biologie de votre patiente.\n",
        xdm_archive=archive, pdfs=(pdf,), request_mdn=True,
    ))
    say("    " + _("sent {message_id} (copy in {folder})").format(message_id=sent.message_id,
                                                                 folder=sent.sent_folder or _("Sent")))
    summary = await _wait_for(per, lambda s: bool(s.subject and s.subject.startswith("XDM/1.0/DDM+")), seen=per_seen)
    say("  " + _("Dr CURIE's LPS (through the intermediate server) reads the message:"))
    await _read_and_acknowledge(per, summary, say)
    mdn = await _wait_for(dpi, lambda s: True, seen=dpi_seen)
    say("  " + _("The DPI receives the read receipt: “{subject}”").format(subject=mdn.subject))

    say("\n" + _("4. Dr CURIE sends a medical summary (VSM) to the DPI"))
    archive, pdf = _document("vsm", now)
    await per.send(Draft(
        sender=Sender(address=per.address, label="Dr Marie CURIE"), to=(dpi.address,),
        text="Bonjour,\n\nVoici la synthèse médicale de la patiente.\n", xdm_archive=archive, pdfs=(pdf,),
        request_mdn=True,
    ))
    summary = await _wait_for(dpi, lambda s: bool(s.subject and s.subject.startswith("XDM/1.0/DDM+")), seen=dpi_seen)
    say("  " + _("The DPI reads the message and answers with a read receipt:"))
    await _read_and_acknowledge(dpi, summary, say)
    await _wait_for(per, lambda s: True, seen=per_seen)
    say("  " + _("Dr CURIE receives the DPI's read receipt"))

    say("\n" + _("5. Dr CURIE writes to the auto-responders crbio-xdm@ and vsm@"))
    for responder in (f"crbio-xdm@{domain}", f"vsm@{domain}"):
        await per.send(Draft(sender=Sender(address=per.address, label="Dr Marie CURIE"), to=(responder,),
                             subject="Demande de document de test", request_mdn=True,
                             text="Bonjour, merci de m'envoyer un document de test.\n"))
        for _answer in range(2):  # the document and the MDN
            summary = await _wait_for(per, lambda s: True, seen=per_seen)
            say("    " + _("received from {sender}: “{subject}”").format(sender=summary.sender,
                                                                        subject=summary.subject))


def _conformance_config() -> SandboxConfig:
    # Short token lifetimes: the suite's PSC-logout case needs a refresh to reveal the end.
    base = default_config()
    return replace(base, lifetimes=replace(base.lifetimes, access_token=2.0, refresh_token=300.0,
                                           ciba_interval=0.2, ciba_approve_delay=0.3))


#: An automated LPS run: quick checks and retries spaced above the suite's threshold.
_SUITE = RunSettings(time_scale=0.05, poll_interval=0.05, quiet_window=0.8, min_retry_interval=0.25,
                     unavailable_for=1.0)
_TUNING = DriverTuning(backoff=Backoff(initial=0.3, maximum=0.6, jitter=0.1, attempts=3), psc_check=0.2,
                       open_timeout=5.0, login_timeout=10.0, poll_interval=1.0, connect_timeout=5.0,
                       command_timeout=5.0)


def _report_dir(state_dir: Path) -> Path:
    out_dir = state_dir.resolve() / "conformance"
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


class DemoFailed(MssanteError):
    """A step of the demo, or a case of the conformance suite, did not succeed (exit code 1)."""

    error = "demo_failed"


@dataclass(frozen=True)
class SuiteOptions:
    """How the demo's conformance step runs (the defaults judge our client on every case).

    Attributes:
        product_reference: the X-MSS-NIL our judged client puts on its messages (ECO.2.4.3); the
            suite is told :data:`DEMO_PRODUCT_REFERENCE`, so another one makes the suite fail,
            which is how the tests check that ``demo --once`` exits 1.
        cases: only these case ids (both profiles); empty: every case.
    """

    product_reference: str = DEMO_PRODUCT_REFERENCE
    cases: tuple[str, ...] = ()


async def _conformance(state_dir: Path, say: Say, suite: SuiteOptions) -> list[str]:
    """Judge our client on both profiles; the names of the profiles not conformant."""
    say("\n" + _("6. The conformance suite (the local MOTCO2) judges the mssante client, "
                 "profiles PER/ORG and APP"))
    out_dir = await asyncio.to_thread(_report_dir, state_dir)
    written: list[Path] = []
    failed: list[str] = []
    # A sandbox of its own: the cases inject faults and reset BALs, which must not disturb the demo's.
    async with Sandbox(_conformance_config(), state_dir / "conformance-sandbox") as csb:
        control = InProcessControl(csb)
        for profile in (Profile.PER_ORG, Profile.APP):
            bal = choose_bal(csb.info, profile, None, control.responders)
            login = None
            if profile is Profile.PER_ORG:
                holder = next(str(b["holders"][0]) for b in csb.info["bals"] if b["address"] == bal)

                async def login(holder: str = holder) -> Mapping[str, Any]:
                    return csb.psc.issue_tokens_for_tests(holder, str(csb.info["psc"]["client_id"]))

            traces = out_dir / f"traces-{profile.value}.jsonl"  # the LPS's ECO.4.1.x traces, judged too
            traces.unlink(missing_ok=True)
            driver = create_driver(DriverSetup(info=csb.info, bal=bal, profile=profile, login=login,
                                               product_reference=suite.product_reference, trace_file=traces),
                                   tuning=_TUNING)
            cases = select_cases(profile, suite.cases)
            try:
                with CaseProgress(len(cases), profile.value) as bar:
                    report = await run_job(control, driver, profile=profile, bal=bal, settings=_SUITE,
                                           case_ids=[c.id for c in cases], trace_file=traces,
                                           on_result=lambda result: bar.done(result.case_id),
                                           product_reference=DEMO_PRODUCT_REFERENCE)  # declared (ECO.2.4.3)
            finally:
                await driver.close()
            passed = sum(r.status is Status.PASS for r in report.results)
            say("    " + ngettext("profile {profile}: {passed}/{n} case conformant (BAL {bal})",
                                  "profile {profile}: {passed}/{n} cases conformant (BAL {bal})",
                                  passed).format(profile=profile.value, passed=passed,
                                                              n=len(report.results), bal=bal))
            if not report.ok:
                failed.append(profile.value)
            for suffix, render in (("html", to_html), ("json", to_json), ("xml", to_junit)):
                path = out_dir / f"{profile.value}.{suffix}"
                path.write_text(render(report), encoding="utf-8")
                written.append(path)
            written.append(write_latest(report, state_dir))
        await control.aclose()
    say("    " + _("test report: {path} (and app.html, JSON, JUnit)").format(path=out_dir / "per-org.html"))
    return failed


async def run_demo(state_dir: Path, *, once: bool = False, say: Say = print,
                   stop: asyncio.Event | None = None, serving: asyncio.Event | None = None,
                   suite: SuiteOptions | None = None) -> dict[str, Any]:
    """Run the demo in ``state_dir``; return the sandbox's ``sandbox.json`` content.

    With ``once``, stop after the demo; otherwise set ``serving`` and keep serving until ``stop``
    is set. An interruption before ``serving`` is the caller's to handle (cancel the task: no
    report is written for a run that did not finish).

    Raises:
        DemoFailed: with ``once``, a profile of the conformance suite was not conformant.
        MssanteError: a step failed (the message says which).
        TimeoutError: an expected message did not arrive within 30 s.
    """
    async with Sandbox(demo_config(), state_dir) as sb:
        info = sb.info
        domain = sb.config.domain
        say(_("1. MSSanté sandbox started: mock PSC, DNS, test IGC, IMAP/SMTP fronts, webmail"))
        resolver = DNSPythonResolver(nameservers=[info["dns"]["host"]], port=info["dns"]["port"])
        tls = TrustSettings(ca_bundle=Path(info["ca_bundle"]))
        bridge, bridge_url, stop_bridge = await _serve_bridge(sb, state_dir)
        stack = contextlib.AsyncExitStack()
        try:
            say("\n" + _("2. Intermediate server started ({url}); Dr CURIE logs in by CIBA").format(url=bridge_url))
            secret = await bridge.core.add_installation("demo-lps")
            client = BridgeClient(bridge_url, "demo-lps", secret)
            stack.push_async_callback(client.aclose)
            tokens: TokenSource = await client.login_with_ciba(
                "899700000001",
                on_binding=lambda code: say("    " + _("binding code shown on the e-CPS: {code}").format(code=code)),
            )
            say("    " + _("PSC session open; the token stays in memory, never on disk"))
            app_bal = next(b for b in info["bals"] if b["address"] == DPI.format(domain=domain))
            # The sandbox's host names exist only in its DNS: the resolver gives the SRV records and
            # the fronts' addresses; the certificates are still checked against the SRV target names.
            per = Mailbox(PER.format(domain=domain), kind="PER", credentials=tokens, resolver=resolver, tls=tls,
                          product_reference=DEMO_PRODUCT_REFERENCE)
            dpi = Mailbox(app_bal["address"], kind="APP", resolver=resolver, tls=tls,
                          credentials=ClientCertificate(cert=Path(app_bal["cert"]), key=Path(app_bal["key"])),
                          product_reference=DEMO_PRODUCT_REFERENCE)
            async with per, dpi:
                await _exchange(sb, per, dpi, say)
        finally:
            with contextlib.suppress(MssanteError):
                await stack.aclose()
            await stop_bridge()
        failed = await _conformance(state_dir, say, suite or SuiteOptions())
        if failed:
            profiles = ", ".join(failed)
            say("\n" + ngettext("NOT CONFORMANT: profile {profiles} — see the test report.",
                                "NOT CONFORMANT: profiles {profiles} — see the test report.",
                                len(failed)).format(profiles=profiles))
            if once:
                raise DemoFailed(ngettext(
                    "the conformance suite judges the client not conformant (profile: {profiles})",
                    "the conformance suite judges the client not conformant (profiles: {profiles})",
                    len(failed)).format(profiles=profiles))
        say("\n" + _("Webmail: {url}  (log in as “Marie CURIE” on the mock PSC page)").format(
            url=info["webmail_url"]))
        say(_("Session journal: {journal} — API: {api}").format(journal=f"{info['webmail_url']}journal",
                                                                api=f"{info['api_url']}/openapi.json"))
        if not once:
            say(_("The sandbox keeps serving; Ctrl-C to stop."))
            if serving is not None:
                serving.set()
            await (stop or asyncio.Event()).wait()
        return info
