"""Fuzzing campaign (issue 13): seeded mutation of realistic inputs, bounded in inputs, CPU and memory.

Run: ``.venv/bin/python benchmarks/fuzz.py [--scale 1] [--seed 13] [--only imap,message,xdm] [--save DIR]``
(not a test; no network; the default scale runs in well under two minutes on one core).

Targets, each in its own forked process so that its peak resident memory is its own:

* ``imap``: the sans-IO IMAP client engine (:class:`mssante.wire.imap.ClientConnection`) fed mutated
  realistic server responses (a selected mailbox: FETCH with ENVELOPE, BODYSTRUCTURE and literals,
  LIST, STATUS, ESEARCH, VANISHED, response codes...) cut in random chunks; every event is then used
  (``len()`` of UID sets, iteration of body structures);
* ``message``: :func:`mssante.message.parse_message` and :func:`check_message` on mutated MSSanté
  messages built with our generators (an XDM message to a patient with its PDF, a reply, an MDN);
* ``xdm``: :func:`mssante.xdm.validate_archive` on mutated ``IHE_XDM.ZIP`` archives (raw ZIP bytes, or
  one entry mutated then re-zipped: METADATA.XML, a CDA document, README/INDEX).

A crash is an exception outside :mod:`mssante.errors`' tree, a hang (one input using more than
``--cpu`` seconds of CPU, stopped by ``SIGPROF``), or a peak RSS growth above ``--rss`` MB over the
target's baseline (measured after its seed corpus is built, in the same process). Crashing inputs are
written to ``--save`` when given. The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import itertools
import json
import multiprocessing
import queue as queue_module
import random
import resource
import signal
import sys
import time
import traceback
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from mssante.errors import MssanteError  # noqa: E402

AS_LIMIT = 2 << 30  # address space of a target process
BASE_COUNTS = {"imap": 50_000, "message": 2_000, "xdm": 5_000}

# Values that broke parsers before (issue 13) or sit on a boundary.
INTERESTING = [
    b"0", b"1", b"-1", b"4294967295", b"4294967296", b"2147483648", b"33030303030303030300", b"9" * 25,
    b"\x00", b"\x89", b"\xff", b"\xc3\xa9", b"\r\n", b"\r", b"\n", b" ", b"\t", b"(", b")", b"[", b"]",
    b"{", b"}", b'"', b"\\", b"{0}\r\n", b"{5}\r\n", b"~{3}\r\n", b"NIL", b"*", b":", b",", b";", b"=",
    b"=?utf-8?q?a?=", b"=?utf-8?b?w6k=?=", b"*0*=utf-8''x", b"<", b">", b"&", b"<!DOCTYPE r>", b"-1400",
    b"99991231235959", b"00000000", b"..", b"/", b"PK\x03\x04",
]  # fmt: skip


# -- mutation -----------------------------------------------------------------------------------
def mutate(rng: random.Random, data: bytes, tokens: list[bytes], max_size: int) -> bytes:
    """Apply one to four random edits (flip, insert, delete, splice, repeat, truncate)."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not buf:
            buf += rng.choice(tokens)
            continue
        pos = rng.randrange(len(buf))
        kind = rng.randrange(9)
        if kind == 0:
            buf[pos] ^= 1 << rng.randrange(8)
        elif kind == 1:
            buf[pos] = rng.randrange(256)
        elif kind == 2:
            del buf[pos : pos + rng.randint(1, 16)]
        elif kind == 3:
            buf[pos:pos] = rng.choice(INTERESTING)
        elif kind == 4:
            buf[pos:pos] = rng.choice(tokens)
        elif kind == 5:  # replace a run of digits with an interesting number
            end = pos
            while end < len(buf) and 48 <= buf[end] <= 57:
                end += 1
            buf[pos:end] = rng.choice(INTERESTING[:8])
        elif kind == 6:  # repeat a slice many times (floods, deep nesting, parameter lists)
            piece = bytes(buf[pos : pos + rng.randint(1, 40)])
            buf[pos:pos] = piece * rng.choice((2, 10, 100, 1000, 5000))
        elif kind == 7:
            del buf[pos:]
        else:  # copy a slice elsewhere
            start = rng.randrange(len(buf))
            buf[pos:pos] = buf[start : start + rng.randint(1, 200)]
    return bytes(buf[:max_size])


# -- targets ------------------------------------------------------------------------------------
IMAP_SESSION = (
    b"* 18 EXISTS\r\n* 2 RECENT\r\n* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded)\r\n"
    b"* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n* OK [UIDVALIDITY 3857529045] UIDs valid\r\n"
    b"* OK [UIDNEXT 4392] next\r\n* OK [HIGHESTMODSEQ 715194045007] mod\r\n"
    b"* CAPABILITY IMAP4rev1 IDLE LITERAL+ MOVE UIDPLUS CONDSTORE QRESYNC ESEARCH SPECIAL-USE\r\n"
    b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"\r\n* LIST () "/" {11}\r\nweird"name\r\r\n'
    b'* LIST (\\Noselect) "/" &AMk-l&AOk-ments\r\n* STATUS INBOX (MESSAGES 231 UIDNEXT 44292 UNSEEN 3)\r\n'
    b"* SEARCH 2 84 882\r\n* ESEARCH (TAG \"a4\") UID COUNT 3 ALL 1:3,7 MIN 1 MAX 7\r\n"
    b"* VANISHED (EARLIER) 1:3,5\r\n* 3 EXPUNGE\r\n"
    b'* ID ("name" "Dovecot" "version" NIL)\r\n'
    b'* 12 FETCH (UID 7 FLAGS (\\Seen $MDNSent) INTERNALDATE " 7-Jul-2024 02:44:25 +0200" RFC822.SIZE 4423 '
    b'MODSEQ (12) ENVELOPE ("Thu, 02 May 2024 09:30:00 +0000" "=?utf-8?q?XDM/1.0/DDM+CR_biologie?=" '
    b'(("Dr Jean DUPONT" NIL "jean.dupont" "hopital-test.mssante.fr")) NIL NIL '
    b'((NIL NIL "279035121518989" "patient.mssante.fr")) NIL NIL NIL "<a@hopital-test.mssante.fr>") '
    b'BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 48 2 NIL NIL NIL NIL)'
    b'("APPLICATION" "PDF" ("NAME" "a.pdf") NIL NIL "BASE64" 4096 NIL ("ATTACHMENT" ("FILENAME" "a.pdf")) '
    b'NIL NIL)("APPLICATION" "ZIP" NIL NIL NIL "BASE64" 9000 NIL ("ATTACHMENT" ("FILENAME" "IHE_XDM.ZIP")) '
    b'NIL NIL) "MIXED" ("BOUNDARY" "b1") NIL NIL NIL) '
    b"BODY[HEADER.FIELDS (SUBJECT X-MSS-CODECDA)] {48}\r\nSubject: x\r\nX-MSS-CODECDA: 11502-2,60591-5\r\n\r\n"
    b" BODY[]<0> {5}\r\nab)\r\n)\r\n"
    b"* 13 FETCH (BINARY[1] ~{3}\r\na\x00b UID 8)\r\n"
    b"* OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n* OK [APPENDUID 38505 3955] APPEND completed\r\n"
    b"* NO [ALERT] disk almost full\r\n* BYE logging out\r\na003 OK done\r\n"
)
IMAP_TOKENS = [
    b"* ", b"a003 ", b"+ ", b"OK ", b"NO ", b"BAD ", b"BYE ", b"FETCH ", b"LIST ", b"STATUS ", b"ESEARCH ",
    b"VANISHED ", b"(EARLIER) ", b"BODY[", b"BODY[HEADER.FIELDS (", b"BINARY[", b"BODYSTRUCTURE ", b"ENVELOPE ",
    b"UID ", b"FLAGS ", b"MODSEQ (", b"[COPYUID ", b"[APPENDUID ", b"[UIDVALIDITY ", b"[PERMANENTFLAGS (",
    b"[CAPABILITY ", b"INTERNALDATE ", b"RFC822.SIZE ",
]  # fmt: skip


def imap_target(rng: random.Random) -> Callable[[bytes], None]:
    from mssante.wire.imap import NEED_DATA, ClientConnection, ConnectionEnded, Login, Noop, Select

    def ready() -> ClientConnection:
        conn = ClientConnection(tls=True, stream_literals_over=rng.choice((None, 4, 1024)))
        for data, command in (
            (b"* OK [CAPABILITY IMAP4rev1 LITERAL+] hi\r\n", Login(username="u", password="p")),
            (b"a001 OK [CAPABILITY IMAP4rev1 IDLE UIDPLUS CONDSTORE QRESYNC] in\r\n", Select(mailbox="INBOX")),
            (b"a002 OK [READ-WRITE] in\r\n", Noop()),
        ):
            conn.receive_data(data)
            while conn.next_event() is not NEED_DATA:
                pass
            conn.send(command)
        return conn

    def use(event: object) -> None:
        for name in ("uids", "source", "destination"):
            value = getattr(event, name, None)
            if value is not None:
                len(value)
        code = getattr(event, "code", None)
        data = getattr(code, "data", None)
        for name in ("uids", "source", "destination"):
            if getattr(data, name, None) is not None:
                len(getattr(data, name))
        for _, value in getattr(event, "items", ()) or ():
            if hasattr(value, "__iter__") and not isinstance(value, bytes | str):
                list(itertools.islice(value, 1000))  # UID sets iterate lazily: 1:4294967295 is one range
        repr(event)

    def run(data: bytes) -> None:
        conn = ready()
        cuts = sorted(rng.randrange(len(data) + 1) for _ in range(rng.randint(0, 12)))
        start = 0
        try:
            for cut in [*cuts, len(data)]:
                if cut > start:
                    conn.receive_data(data[start:cut])
                    start = cut
                while (event := conn.next_event()) is not NEED_DATA:
                    use(event)
                    if isinstance(event, ConnectionEnded):
                        return
            conn.receive_data(b"")
            while not isinstance(event := conn.next_event(), ConnectionEnded):
                use(event)
        except MssanteError:
            return

    return run


def message_corpus() -> list[bytes]:
    from tests.hardening import _samples

    from mssante.message import ComposeSettings, Draft, compose_message, generate_mdn, parse_message

    xdm_message = _samples.message()
    reply = compose_message(
        Draft(
            sender=_samples.SENDER,
            to=("marie.curie@cabinet-test.mssante.fr",),
            cc=("secretariat@hopital-test.mssante.fr",),
            subject="Re: =?utf-8?q?r=C3=A9sultats?= de Mme PAT-TROIS",
            text="Bonjour,\nmerci pour ces résultats.\n",
            html="<p>Bonjour,<br>merci pour ces <b>résultats</b>.</p>",
            in_reply_to="<20240502093000.1@hopital-test.mssante.fr>",
            references=("<20240502093000.1@hopital-test.mssante.fr>",),
            request_mdn=True,
        ),
        settings=ComposeSettings(product_reference="DEV935997"),
        now=_samples.NOW,
    ).to_bytes()
    mdn = generate_mdn(
        parse_message(xdm_message),
        reporter="279035121518989@patient.mssante.fr",
        settings=ComposeSettings(product_reference="DEV935997"),
        now=_samples.NOW,
    ).to_bytes()
    return [xdm_message, reply, mdn]


MESSAGE_TOKENS = [
    b"Date: ", b"Date:2147483648 Jan 2 0:00", b"From: ", b"To: ", b"Subject: ", b"Content-Type: multipart/mixed;",
    b" boundary=", b"Content-Transfer-Encoding: base64\r\n", b"Content-Disposition: attachment;", b" filename*0*=",
    b"X-MSS-CODECDA: ", b"X-MSS-INS: O\r\n", b"Disposition-Notification-To: ", b"message/disposition-notification",
    b"multipart/report; report-type=delivery-status", b"\r\n\r\n", b"\r\n--", b"=?iso-8859-1?q?=E9?=",
]  # fmt: skip


def message_target(rng: random.Random) -> Callable[[bytes], None]:
    from mssante.message import check_message, parse_message

    def run(data: bytes) -> None:
        try:
            parsed = parse_message(data)
            _ = (parsed.text, parsed.html, [a.size for a in parsed.attachments], parsed.report, parsed.archive)
        except MssanteError:
            pass
        with contextlib.suppress(MssanteError):
            check_message(data)

    return run


XDM_ENTRIES = ("IHE_XDM/SUBSET01/METADATA.XML", "IHE_XDM/SUBSET01/DOC0001.XML", "IHE_XDM/SUBSET01/DOC0002.XML")
XML_TOKENS = [
    b"<", b"</", b"/>", b' xmlns="', b' xmlns:p="', b"<!DOCTYPE r [<!ENTITY e 'x'>]>", b"&e;", b"&amp;",
    b'<effectiveTime value="999912312359-1400"/>', b'<birthTime value="0000"/>', b' root="', b' extension="',
    b'<id root="1.2.250.1.213.1.4.8" extension="', b"<Slot name=\"creationTime\"><ValueList><Value>",
    b"</Value></ValueList></Slot>", b'value="', b"urn:uuid:", b"<![CDATA[", b"]]>", b"<?xml version='1.0'?>",
]  # fmt: skip


def xdm_target(rng: random.Random) -> Callable[[bytes], None]:
    from mssante.xdm import validate_archive

    def run(data: bytes) -> None:
        try:
            report = validate_archive(data)
            _ = (report.ok, report.archive.patient, report.archive.has_qualified_ins, report.archive.cda_codes)
        except MssanteError:
            pass

    return run


# -- the campaign -------------------------------------------------------------------------------
class Hang(BaseException):
    """Raised by the SIGPROF handler: one input used more CPU than allowed."""


@dataclass
class TargetResult:
    target: str
    inputs: int = 0
    crashes: list[dict[str, str]] = field(default_factory=list)
    hangs: int = 0
    baseline_rss_mb: float = 0.0
    peak_rss_mb: float = 0.0
    max_cpu_s: float = 0.0
    seconds: float = 0.0


def _inputs(name: str, rng: random.Random, count: int) -> Iterator[bytes]:
    if name == "imap":
        lines = IMAP_SESSION.split(b"\r\n")
        for _ in range(count):
            start = rng.randrange(len(lines))
            seed = b"\r\n".join(lines[start : start + rng.randint(1, 8)]) + b"\r\n"
            yield mutate(rng, seed, IMAP_TOKENS, 1 << 20)
    elif name == "message":
        corpus = message_corpus()
        for _ in range(count):
            yield mutate(rng, rng.choice(corpus), MESSAGE_TOKENS, 4 << 20)
    else:
        from tests.hardening import _samples

        archives = [_samples.archive(), _samples.archive(_samples.cda_documents()[:1])]
        entries = {name: zipfile.ZipFile(io.BytesIO(archives[0])).read(name) for name in XDM_ENTRIES}
        for _ in range(count):
            if rng.random() < 0.25:
                yield mutate(rng, rng.choice(archives), [b"PK\x03\x04", b"PK\x01\x02", b"\xff\xff\xff\xff"], 4 << 20)
            else:
                name = rng.choice(XDM_ENTRIES)
                yield _samples.replace_entry(archives[0], name, mutate(rng, entries[name], XML_TOKENS, 4 << 20))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_target(name: str, seed: int, count: int, cpu: float, save: str | None) -> TargetResult:
    rng = random.Random(f"{seed}:{name}")
    random.seed(seed)  # MIME boundaries of the generated corpus
    factory = {"imap": imap_target, "message": message_target, "xdm": xdm_target}[name]
    run = factory(rng)
    result = TargetResult(target=name)
    started = time.monotonic()

    def on_prof(signum: int, frame: FrameType | None) -> None:
        raise Hang()

    signal.signal(signal.SIGPROF, on_prof)
    inputs = _inputs(name, rng, count)
    first = True
    for data in inputs:
        if first:  # the corpus is built: this is the target's baseline
            result.baseline_rss_mb = _rss_mb()
            first = False
        result.inputs += 1
        cpu_start = time.process_time()
        signal.setitimer(signal.ITIMER_PROF, cpu)
        try:
            run(data)
        except Hang:
            result.hangs += 1
            _record(result, data, "Hang", f"more than {cpu} s of CPU", save)
        except Exception as exc:  # the point: anything outside our tree is a crash
            where = traceback.extract_tb(exc.__traceback__)[-1]
            _record(result, data, type(exc).__name__, f"{exc!s:.160} at {where.filename}:{where.lineno}", save)
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
        result.max_cpu_s = max(result.max_cpu_s, time.process_time() - cpu_start)
    result.peak_rss_mb = _rss_mb()
    result.seconds = time.monotonic() - started
    return result


def _record(result: TargetResult, data: bytes, kind: str, detail: str, save: str | None) -> None:
    digest = hashlib.sha1(data, usedforsecurity=False).hexdigest()[:12]
    result.crashes.append({"kind": kind, "detail": detail, "input": digest, "head": repr(data[:120])})
    if save:
        Path(save).mkdir(parents=True, exist_ok=True)
        (Path(save) / f"{result.target}-{kind}-{digest}.bin").write_bytes(data)


def print_crashes(target: str, crashes: list[dict[str, str]]) -> None:
    """One line per distinct crash site (kind + where), with the first input that hit it."""
    seen: set[str] = set()
    for crash in crashes:
        key = crash["kind"] + crash["detail"].rsplit(" at ", 1)[-1]
        if key not in seen:
            seen.add(key)
            print(f"  {target}: {crash['kind']}: {crash['detail']}")
            print(f"    input {crash['input']}: {crash['head']}")


def _child(name: str, seed: int, count: int, cpu: float, save: str | None, queue: multiprocessing.Queue) -> None:
    # The machine is shared: an input that explodes gets MemoryError (a crash) well before the OOM killer.
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
    queue.put(run_target(name, seed, count, cpu, save).__dict__)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the input counts (default 1)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--only", default="", help="comma-separated targets: imap,message,xdm")
    parser.add_argument("--cpu", type=float, default=2.0, help="CPU seconds allowed per input (default 2)")
    parser.add_argument("--rss", type=float, default=150.0, help="peak RSS growth allowed per target, MB")
    parser.add_argument("--save", default=None, help="directory for crashing inputs")
    args = parser.parse_args()
    names = [n for n in BASE_COUNTS if not args.only or n in args.only.split(",")]
    context = multiprocessing.get_context("fork")
    results: list[dict[str, object]] = []
    for name in names:
        queue: multiprocessing.Queue = context.Queue()
        count = max(1, int(BASE_COUNTS[name] * args.scale))
        proc = context.Process(target=_child, args=(name, args.seed, count, args.cpu, args.save, queue))
        proc.start()
        while True:
            try:
                results.append(queue.get(timeout=1))
                break
            except queue_module.Empty:
                if not proc.is_alive():
                    died = {"kind": "Died", "detail": f"exit code {proc.exitcode}", "input": "-", "head": ""}
                    results.append(TargetResult(target=name, crashes=[died]).__dict__)
                    break
        proc.join()
    failures = 0
    print(f"{'target':<8} {'inputs':>7} {'crashes':>7} {'hangs':>5} {'base MB':>8} {'peak MB':>8} "
          f"{'growth':>7} {'max CPU s':>9} {'s':>6}")  # fmt: skip
    for r in results:
        growth = float(r["peak_rss_mb"]) - float(r["baseline_rss_mb"])  # type: ignore[arg-type]
        over = growth > args.rss
        crashes = r["crashes"]
        assert isinstance(crashes, list)
        failures += len(crashes) + int(over)
        print(f"{r['target']:<8} {r['inputs']:>7} {len(crashes):>7} {r['hangs']:>5} {r['baseline_rss_mb']:>8.1f} "
              f"{r['peak_rss_mb']:>8.1f} {growth:>7.1f} {r['max_cpu_s']:>9.2f} {r['seconds']:>6.1f}"
              + ("  <-- RSS over bound" if over else ""))  # fmt: skip
    for r in results:
        print_crashes(str(r["target"]), r["crashes"])  # type: ignore[arg-type]
    summary = {
        "bench": "fuzz",
        "seed": args.seed,
        "scale": args.scale,
        "targets": {
            str(r["target"]): {
                "inputs": r["inputs"],
                "crashes": len(r["crashes"]),  # type: ignore[arg-type]
                "hangs": r["hangs"],
                "peak_rss_mb": r["peak_rss_mb"],
                "rss_growth_mb": round(float(r["peak_rss_mb"]) - float(r["baseline_rss_mb"]), 1),  # type: ignore[arg-type]
                "seconds": round(float(r["seconds"]), 1),  # type: ignore[arg-type]
            }
            for r in results
        },
        "failures": failures,
    }
    print(json.dumps(summary))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
