"""Wire transcripts: scripted server octets -> expected events; commands -> expected client octets."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from mssante.errors import LocalProtocolError
from mssante.secret import Secret
from mssante.wire.imap import (
    NEED_DATA,
    Address,
    Append,
    AppendUid,
    Authenticate,
    Bye,
    Capability,
    CapabilityResponse,
    ClientConnection,
    ClientState,
    Close,
    ConnectionEnded,
    Continuation,
    ContinuationPurpose,
    CopyUid,
    Enable,
    EnabledResponse,
    Envelope,
    ESearchResponse,
    Event,
    Examine,
    ExistsResponse,
    Expunge,
    ExpungeResponse,
    FetchResponse,
    FlagsResponse,
    Greeting,
    Id,
    Idle,
    IdResponse,
    ListMailboxes,
    ListResponse,
    LiteralChunk,
    Login,
    Logout,
    Noop,
    OtherResponse,
    RecentResponse,
    ResponseCode,
    SearchKey,
    SearchResponse,
    Select,
    SinglePart,
    StartTLS,
    Status,
    StatusResponse,
    StreamedLiteral,
    Tagged,
    UidCopy,
    UidExpunge,
    UidFetch,
    UidMove,
    UidSearch,
    UidSet,
    UidStore,
    Unselect,
    UntaggedStatus,
    VanishedResponse,
)

DOVECOT_GREETING = (
    b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN "
    b"AUTH=XOAUTH2 AUTH=OAUTHBEARER] Dovecot (Debian) ready.\r\n"
)
DOVECOT_LOGGED_IN_CAPS = (
    b"IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS "
    b"THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED "
    b"I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE "
    b"SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE"
)
GMAIL_GREETING = b"* OK Gimap ready for requests from 192.0.2.7 q7mb123456\r\n"
GMAIL_CAPS = (
    b"* CAPABILITY IMAP4rev1 UNSELECT IDLE NAMESPACE QUOTA ID XLIST CHILDREN X-GM-EXT-1 XYZZY SASL-IR "
    b"AUTH=XOAUTH2 AUTH=PLAIN AUTH=PLAIN-CLIENTTOKEN AUTH=OAUTHBEARER AUTH=XOAUTH\r\n"
)
GMAIL_AUTH_CAPS = (
    b"IMAP4rev1 UNSELECT IDLE NAMESPACE QUOTA ID XLIST CHILDREN X-GM-EXT-1 UIDPLUS COMPRESS=DEFLATE ENABLE MOVE "
    b"CONDSTORE ESEARCH UTF8=ACCEPT LIST-EXTENDED LIST-STATUS LITERAL- SPECIAL-USE APPENDLIMIT=35651584"
)


def drain(conn: ClientConnection) -> list[Event]:
    """All events available now."""
    events: list[Event] = []
    while (event := conn.next_event()) is not NEED_DATA:
        assert not isinstance(event, type(NEED_DATA))
        events.append(event)
        if isinstance(event, ConnectionEnded):
            break
    return events


def feed(conn: ClientConnection, data: bytes) -> list[Event]:
    conn.receive_data(data)
    return drain(conn)


def authenticated(greeting: bytes = b"* OK ready\r\n", **kwargs: object) -> ClientConnection:
    conn = ClientConnection(tls=True, **kwargs)  # type: ignore[arg-type]
    feed(conn, greeting)
    conn.send(Login(username="u", password="p"))
    feed(conn, b"a001 OK done\r\n")
    return conn


def selected(**kwargs: object) -> ClientConnection:
    conn = authenticated(**kwargs)
    conn.send(Select(mailbox="INBOX"))
    feed(conn, b"a002 OK [READ-WRITE] selected\r\n")
    return conn


# -- RFC 3501 §8 sample session -------------------------------------------------------------------

RFC3501_HEADER = (
    b"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n"
    b"From: Terry Gray <gray@cac.washington.edu>\r\n"
    b"Subject: IMAP4rev1 WG mtg summary and minutes\r\n"
    b"To: imap@cac.washington.edu\r\n"
    b"cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\r\n"
    b"Message-Id: <B27397-0100000@cac.washington.edu>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
    b"\r\n"
)
RFC3501_FETCH_FULL = (
    b'* 12 FETCH (FLAGS (\\Seen) INTERNALDATE "17-Jul-1996 02:44:25 -0700" RFC822.SIZE 4286 ENVELOPE '
    b'("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" '
    b'(("Terry Gray" NIL "gray" "cac.washington.edu")) (("Terry Gray" NIL "gray" "cac.washington.edu")) '
    b'(("Terry Gray" NIL "gray" "cac.washington.edu")) ((NIL NIL "imap" "cac.washington.edu")) '
    b'((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL '
    b'"<B27397-0100000@cac.washington.edu>") BODY ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92))\r\n'
)
TERRY = Address(name=b"Terry Gray", route=None, mailbox=b"gray", host=b"cac.washington.edu")

# (client command, expected client octets, server octets, expected events)
RFC3501_SESSION: list[tuple[object, bytes, bytes, list[Event]]] = [
    (
        None,
        b"",
        b"* OK IMAP4rev1 Service Ready\r\n",
        [Greeting(status="OK", code=None, text="IMAP4rev1 Service Ready")],
    ),
    (
        Login(username="mrc", password=Secret("secret")),
        b"a001 LOGIN mrc secret\r\n",
        b"a001 OK LOGIN completed\r\n",
        [Tagged(tag="a001", command="LOGIN", status="OK", code=None, text="LOGIN completed")],
    ),
    (
        Select(mailbox="inbox"),
        b"a002 SELECT inbox\r\n",
        b"* 18 EXISTS\r\n"
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
        b"* 2 RECENT\r\n"
        b"* OK [UNSEEN 17] Message 17 is the first unseen message\r\n"
        b"* OK [UIDVALIDITY 3857529045] UIDs valid\r\n"
        b"a002 OK [READ-WRITE] SELECT completed\r\n",
        [
            ExistsResponse(count=18),
            FlagsResponse(flags=("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")),
            RecentResponse(count=2),
            UntaggedStatus(
                status="OK",
                code=ResponseCode(name="UNSEEN", data=17, raw="UNSEEN 17"),
                text="Message 17 is the first unseen message",
            ),
            UntaggedStatus(
                status="OK",
                code=ResponseCode(name="UIDVALIDITY", data=3857529045, raw="UIDVALIDITY 3857529045"),
                text="UIDs valid",
            ),
            Tagged(
                tag="a002",
                command="SELECT",
                status="OK",
                code=ResponseCode(name="READ-WRITE", raw="READ-WRITE"),
                text="SELECT completed",
            ),
        ],
    ),
    (
        UidFetch(uids=12, items=("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY")),
        b"a003 UID FETCH 12 (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY)\r\n",
        RFC3501_FETCH_FULL + b"a003 OK FETCH completed\r\n",
        [
            FetchResponse(
                seq=12,
                items=(
                    ("FLAGS", ("\\Seen",)),
                    ("INTERNALDATE", dt.datetime(1996, 7, 17, 2, 44, 25, tzinfo=dt.timezone(-dt.timedelta(hours=7)))),
                    ("RFC822.SIZE", 4286),
                    (
                        "ENVELOPE",
                        Envelope(
                            date=b"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)",
                            subject=b"IMAP4rev1 WG mtg summary and minutes",
                            from_=(TERRY,),
                            sender=(TERRY,),
                            reply_to=(TERRY,),
                            to=(Address(name=None, route=None, mailbox=b"imap", host=b"cac.washington.edu"),),
                            cc=(
                                Address(name=None, route=None, mailbox=b"minutes", host=b"CNRI.Reston.VA.US"),
                                Address(name=b"John Klensin", route=None, mailbox=b"KLENSIN", host=b"MIT.EDU"),
                            ),
                            bcc=(),
                            in_reply_to=None,
                            message_id=b"<B27397-0100000@cac.washington.edu>",
                        ),
                    ),
                    (
                        "BODY",
                        SinglePart(
                            type="text",
                            subtype="plain",
                            params=(("charset", b"US-ASCII"),),
                            id=None,
                            description=None,
                            encoding="7bit",
                            size=3028,
                            lines=92,
                        ),
                    ),
                ),
            ),
            Tagged(tag="a003", command="UID FETCH", status="OK", code=None, text="FETCH completed"),
        ],
    ),
    (
        UidFetch(uids=12, items=("BODY[HEADER]",)),
        b"a004 UID FETCH 12 (BODY[HEADER])\r\n",
        b"* 12 FETCH (BODY[HEADER] {342}\r\n" + RFC3501_HEADER + b")\r\na004 OK FETCH completed\r\n",
        [
            FetchResponse(seq=12, items=(("BODY[HEADER]", RFC3501_HEADER),)),
            Tagged(tag="a004", command="UID FETCH", status="OK", code=None, text="FETCH completed"),
        ],
    ),
    (
        UidStore(uids=12, flags=("\\Deleted",), silent=False),
        b"a005 UID STORE 12 +FLAGS (\\Deleted)\r\n",
        b"* 12 FETCH (FLAGS (\\Seen \\Deleted))\r\na005 OK +FLAGS completed\r\n",
        [
            FetchResponse(seq=12, items=(("FLAGS", ("\\Seen", "\\Deleted")),)),
            Tagged(tag="a005", command="UID STORE", status="OK", code=None, text="+FLAGS completed"),
        ],
    ),
    (
        Logout(),
        b"a006 LOGOUT\r\n",
        b"* BYE IMAP4rev1 server terminating connection\r\na006 OK LOGOUT completed\r\n",
        [
            Bye(code=None, text="IMAP4rev1 server terminating connection"),
            Tagged(tag="a006", command="LOGOUT", status="OK", code=None, text="LOGOUT completed"),
        ],
    ),
]


def test_rfc3501_sample_session() -> None:
    conn = ClientConnection(tls=True)
    assert conn.state is ClientState.AWAITING_GREETING
    states = []
    for command, client_bytes, server_bytes, events in RFC3501_SESSION:
        if command is not None:
            assert conn.send(command) == client_bytes  # type: ignore[arg-type]
        assert feed(conn, server_bytes) == events
        states.append(conn.state)
    assert states == [
        ClientState.NOT_AUTHENTICATED,
        ClientState.AUTHENTICATED,
        ClientState.SELECTED,
        ClientState.SELECTED,
        ClientState.SELECTED,
        ClientState.SELECTED,
        ClientState.LOGOUT,
    ]
    assert feed(conn, b"") == [ConnectionEnded()]


def test_fetch_convenience_properties() -> None:
    conn = selected()
    conn.send(UidFetch(uids="1:*", items=("FLAGS",)))
    (event,) = feed(conn, RFC3501_FETCH_FULL.replace(b"(FLAGS (\\Seen)", b"(UID 7 FLAGS (\\Seen)"))
    assert isinstance(event, FetchResponse)
    assert event.uid == 7
    assert event.flags == ("\\Seen",)
    assert event.size == 4286
    assert event.envelope is not None and event.envelope.from_ == (TERRY,)
    assert isinstance(event.bodystructure, SinglePart)
    assert event.internaldate == dt.datetime(1996, 7, 17, 9, 44, 25, tzinfo=dt.UTC)
    assert event.get("rfc822.size") == 4286 and event.get("MODSEQ") is None


# -- capability lines: Dovecot-like and Gmail-like -----------------------------------------------


def test_dovecot_capabilities_from_greeting_and_login_code() -> None:
    conn = ClientConnection(tls=True)
    (greeting,) = feed(conn, DOVECOT_GREETING)
    assert isinstance(greeting, Greeting) and greeting.code is not None
    assert conn.capabilities is not None and "SASL-IR" in conn.capabilities and conn.has("auth=xoauth2")
    # SASL-IR advertised: the initial response goes inline (RFC 4959 §3).
    wire = conn.send(Authenticate(mechanism="xoauth2", initial_response=b"user=u\x01auth=Bearer t\x01\x01"))
    assert wire == b"a001 AUTHENTICATE XOAUTH2 " + base64.b64encode(b"user=u\x01auth=Bearer t\x01\x01") + b"\r\n"
    assert conn.capabilities is None  # RFC 3501 §6.2.2: may change after authentication
    (tagged,) = feed(conn, b"a001 OK [CAPABILITY " + DOVECOT_LOGGED_IN_CAPS + b"] Logged in\r\n")
    assert isinstance(tagged, Tagged) and tagged.ok
    assert conn.state is ClientState.AUTHENTICATED
    assert conn.has("MOVE") and conn.has("SPECIAL-USE") and not conn.has("STARTTLS")


def test_gmail_capabilities_and_xoauth2_error_challenge() -> None:
    conn = ClientConnection(tls=True)
    assert feed(conn, GMAIL_GREETING)[0] == Greeting(
        status="OK", code=None, text="Gimap ready for requests from 192.0.2.7 q7mb123456"
    )
    assert conn.capabilities is None
    conn.send(Capability())
    events = feed(conn, GMAIL_CAPS + b"a001 OK Thats all she wrote! q7mb123456\r\n")
    assert isinstance(events[0], CapabilityResponse) and "X-GM-EXT-1" in events[0].capabilities
    conn.send(Authenticate(mechanism="XOAUTH2", initial_response=b"token"))
    error = b'{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}'
    (challenge,) = feed(conn, b"+ " + base64.b64encode(error) + b"\r\n")
    assert challenge == Continuation(
        purpose=ContinuationPurpose.SASL, text=base64.b64encode(error).decode(), challenge=error
    )
    assert conn.state is ClientState.AUTHENTICATING
    assert conn.send_continuation(b"") == b"\r\n"  # RFC 7628 §3.2.3: answer the error with an empty response
    (tagged,) = feed(conn, b"a002 NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)\r\n")
    assert isinstance(tagged, Tagged) and tagged.status == "NO"
    assert tagged.code == ResponseCode(name="AUTHENTICATIONFAILED", raw="AUTHENTICATIONFAILED")
    assert conn.state is ClientState.NOT_AUTHENTICATED
    assert conn.has("AUTH=XOAUTH2")  # pre-auth capabilities restored after the failure


def test_gmail_fetch_extensions_and_list() -> None:
    conn = authenticated(greeting=GMAIL_GREETING)
    conn.send(ListMailboxes(special_use=False))
    events = feed(
        conn,
        b'* LIST (\\HasChildren \\Noselect) "/" "[Gmail]"\r\n'
        b'* LIST (\\HasNoChildren \\Sent) "/" "[Gmail]/Sent Mail"\r\n'
        b'* LIST (\\HasNoChildren) "/" "&AMk-l&AOk-ments envoy&AOk-s"\r\n'
        b"a002 OK Success\r\n",
    )
    assert [e.name for e in events if isinstance(e, ListResponse)] == [
        "[Gmail]",
        "[Gmail]/Sent Mail",
        "Éléments envoyés",
    ]
    sent = events[1]
    assert isinstance(sent, ListResponse) and sent.special_use == "\\Sent" and sent.delimiter == "/"
    assert isinstance(events[2], ListResponse) and events[2].raw_name == b"&AMk-l&AOk-ments envoy&AOk-s"
    conn.send(Select(mailbox="[Gmail]/Sent Mail"))
    feed(conn, b"a003 OK [READ-WRITE] ok\r\n")
    conn.send(UidFetch(uids="4", items=("X-GM-THRID", "X-GM-MSGID", "X-GM-LABELS", "FLAGS")))
    (fetch, _) = feed(
        conn,
        b"* 1 FETCH (X-GM-THRID 1278455344230334865 X-GM-MSGID 1278455344230334866 "
        b'X-GM-LABELS (\\Inbox \\Sent Important "Muy Importante") UID 4 FLAGS (\\Seen))\r\n'
        b"a004 OK Success\r\n",
    )
    assert isinstance(fetch, FetchResponse)
    assert fetch.get("X-GM-THRID") == 1278455344230334865
    assert fetch.get("X-GM-LABELS") == (b"\\Inbox", b"\\Sent", b"Important", b"Muy Importante")
    assert fetch.uid == 4


# -- client octets for each command ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (Capability(), b"a003 CAPABILITY\r\n"),
        (Noop(), b"a003 NOOP\r\n"),
        (Examine(mailbox="Envoyés"), b"a003 EXAMINE Envoy&AOk-s\r\n"),
        (Select(mailbox=b"raw&-name"), b"a003 SELECT raw&-name\r\n"),
        (Select(mailbox="with space"), b'a003 SELECT "with space"\r\n'),
        (Select(mailbox="NIL"), b'a003 SELECT "NIL"\r\n'),
        (Select(mailbox='q"uo\\te'), b'a003 SELECT "q\\"uo\\\\te"\r\n'),
        (Select(mailbox=""), b'a003 SELECT ""\r\n'),
        (ListMailboxes(), b'a003 LIST "" *\r\n'),
        (ListMailboxes(pattern="%", special_use=True), b'a003 LIST "" % RETURN (SPECIAL-USE)\r\n'),
        (Status(mailbox="INBOX"), b"a003 STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN)\r\n"),
        (
            UidFetch(uids=[1, 2, 5], items=("UID", "BODY.PEEK[]<0.1024>")),
            b"a003 UID FETCH 1,2,5 (UID BODY.PEEK[]<0.1024>)\r\n",
        ),
        (UidFetch(uids="1:*", items=("FLAGS",), changedsince=7), b"a003 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 7)\r\n"),
        (
            UidStore(uids="3:4", flags=("\\Seen", "$Label1"), mode="-"),
            b"a003 UID STORE 3:4 -FLAGS.SILENT (\\Seen $Label1)\r\n",
        ),
        (UidCopy(uids=UidSet(ranges=((1, 3),)), mailbox="Archive"), b"a003 UID COPY 1:3 Archive\r\n"),
        (UidMove(uids=9, mailbox="Trash"), b"a003 UID MOVE 9 Trash\r\n"),
        (UidExpunge(uids="9"), b"a003 UID EXPUNGE 9\r\n"),
        (Expunge(), b"a003 EXPUNGE\r\n"),
        (Close(), b"a003 CLOSE\r\n"),
        (Unselect(), b"a003 UNSELECT\r\n"),
        (Idle(), b"a003 IDLE\r\n"),
        (Id(params=(("name", "mssante"), ("version", None))), b'a003 ID ("name" "mssante" "version" NIL)\r\n'),
        (Id(), b"a003 ID NIL\r\n"),
        (UidSearch(criteria=SearchKey.unseen()), b"a003 UID SEARCH UNSEEN\r\n"),
        (
            UidSearch(criteria=SearchKey.text("subject", 'a ") OR ALL') & SearchKey.date("since", dt.date(2026, 2, 1))),
            b'a003 UID SEARCH SUBJECT "a \\") OR ALL" SINCE 1-Feb-2026\r\n',
        ),
        (
            UidSearch(criteria=SearchKey.header("X-MSS-Id", "42") | ~SearchKey.flag("seen")),
            b"a003 UID SEARCH OR HEADER X-MSS-Id 42 NOT SEEN\r\n",
        ),
        (
            UidSearch(criteria=~(SearchKey.text("from", "é") & SearchKey.keyword("$Done"))),
            b"a003 UID SEARCH CHARSET UTF-8 NOT (FROM {2}\r\n",
        ),
        (
            UidSearch(criteria=SearchKey.size(larger=10) & SearchKey.uid("1:*"), return_options=("count",)),
            b"a003 UID SEARCH RETURN (COUNT) LARGER 10 UID 1:*\r\n",
        ),
    ],
)
def test_command_octets(command: object, expected: bytes) -> None:
    conn2 = ClientConnection(tls=True)
    feed(conn2, b"* OK [CAPABILITY IMAP4rev1 MOVE UIDPLUS UNSELECT IDLE ID ESEARCH] hi\r\n")
    conn2.send(Login(username="u", password="p"))
    feed(conn2, b"a001 OK [CAPABILITY IMAP4rev1 MOVE UIDPLUS UNSELECT IDLE ID ESEARCH] in\r\n")
    conn2.send(Select(mailbox="INBOX"))
    feed(conn2, b"a002 OK selected\r\n")
    assert conn2.send(command) == expected  # type: ignore[arg-type]


def test_enable_is_authenticated_state_only() -> None:
    conn2 = ClientConnection(tls=True)
    feed(conn2, b"* OK hi\r\n")
    conn2.send(Login(username="u", password="p"))
    feed(conn2, b"a001 OK [CAPABILITY IMAP4rev1 ENABLE UTF8=ACCEPT] in\r\n")
    assert conn2.send(Enable(capabilities=("utf8=accept",))) == b"a002 ENABLE UTF8=ACCEPT\r\n"
    events = feed(conn2, b"* ENABLED UTF8=ACCEPT\r\na002 OK enabled\r\n")
    assert events[0] == EnabledResponse(capabilities=("UTF8=ACCEPT",))
    # RFC 6855 §3: names are now UTF-8 on the wire, both ways.
    assert conn2.send(Select(mailbox="Envoyés")) == 'a003 SELECT "Envoyés"\r\n'.encode()
    feed(conn2, b"a003 OK [READ-WRITE] ok\r\n")
    with pytest.raises(LocalProtocolError):
        conn2.send(Enable(capabilities=("CONDSTORE",)))  # RFC 5161 §3.1: not in the selected state


def test_login_strings_quoted_or_literal() -> None:
    conn = ClientConnection(tls=True)
    feed(conn, b"* OK hi\r\n")
    # CR/LF cannot go in a quoted string (RFC 3501 §4.3): a synchronizing literal is used.
    assert conn.send(Login(username="user name", password="pa\r\nss")) == b'a001 LOGIN "user name" {6}\r\n'
    assert conn.state is ClientState.AUTHENTICATING
    with pytest.raises(LocalProtocolError):
        conn.send_literal()  # no "+" yet
    (cont,) = feed(conn, b"+ Ready for literal data\r\n")
    assert cont == Continuation(purpose=ContinuationPurpose.LITERAL, text="Ready for literal data")
    assert conn.send_literal() == b"pa\r\nss\r\n"
    (tagged,) = feed(conn, b"a001 OK done\r\n")
    assert isinstance(tagged, Tagged) and tagged.command == "LOGIN"
    assert conn.state is ClientState.AUTHENTICATED


def test_non_ascii_password_goes_as_literal_and_nul_is_refused() -> None:
    conn = ClientConnection(tls=True)
    feed(conn, b"* OK [CAPABILITY IMAP4rev1 LITERAL+] hi\r\n")
    assert conn.send(Login(username="u", password="mötdepasse")) == "a001 LOGIN u {11+}\r\nmötdepasse\r\n".encode()
    with pytest.raises(LocalProtocolError):
        Login(username="u", password="a\x00b")


def test_append_synchronizing_literal() -> None:
    conn = authenticated()
    message = b"From: a@b\r\nSubject: hi\r\n\r\nbody\r\n"
    when = dt.datetime(2026, 11, 28, 9, 5, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    wire = conn.send(Append(mailbox="Sent", message=message, flags=("\\Seen",), internaldate=when))
    assert wire == b'a002 APPEND Sent (\\Seen) "28-Nov-2026 09:05:01 +0100" {%d}\r\n' % len(message)
    assert conn.state is ClientState.APPENDING_LITERAL
    assert feed(conn, b"+ OK\r\n")[0] == Continuation(purpose=ContinuationPurpose.LITERAL, text="OK")
    assert conn.send_literal() == message + b"\r\n"
    (tagged,) = feed(conn, b"a002 OK [APPENDUID 38505 3955] APPEND completed\r\n")
    assert isinstance(tagged, Tagged)
    assert tagged.code is not None and tagged.code.data == AppendUid(
        uidvalidity=38505, uids=UidSet(ranges=((3955, 3955),))
    )
    assert conn.state is ClientState.AUTHENTICATED


def test_append_refused_instead_of_continuation() -> None:
    conn = authenticated()
    conn.send(Append(mailbox="Sent", message=b"x" * 10))
    (tagged,) = feed(conn, b"a002 NO [OVERQUOTA] Quota exceeded\r\n")
    assert isinstance(tagged, Tagged) and tagged.code == ResponseCode(name="OVERQUOTA", raw="OVERQUOTA")
    with pytest.raises(LocalProtocolError):
        conn.send_literal()
    assert conn.state is ClientState.AUTHENTICATED


def test_append_literal_plus_and_literal_minus() -> None:
    conn = authenticated(greeting=b"* OK [CAPABILITY IMAP4rev1 LITERAL+] hi\r\n")
    conn = ClientConnection(tls=True)
    feed(conn, b"* OK hi\r\n")
    conn.send(Login(username="u", password="p"))
    feed(conn, b"a001 OK [CAPABILITY IMAP4rev1 LITERAL+] in\r\n")
    assert conn.send(Append(mailbox="INBOX", message=b"abc")) == b"a002 APPEND INBOX {3+}\r\nabc\r\n"
    feed(conn, b"a002 OK done\r\n")
    conn = ClientConnection(tls=True)
    feed(conn, b"* OK hi\r\n")
    conn.send(Login(username="u", password="p"))
    feed(conn, b"a001 OK [CAPABILITY IMAP4rev1 LITERAL-] in\r\n")
    assert conn.send(Append(mailbox="INBOX", message=b"abc")) == b"a002 APPEND INBOX {3+}\r\nabc\r\n"
    feed(conn, b"a002 OK done\r\n")
    big = b"x" * 5000  # RFC 7888 §4: LITERAL- only up to 4096 octets
    assert conn.send(Append(mailbox="INBOX", message=big)) == b"a003 APPEND INBOX {5000}\r\n"


def test_append_binary_needs_binary_capability() -> None:
    conn = authenticated()
    with pytest.raises(LocalProtocolError):
        conn.send(Append(mailbox="INBOX", message=b"a\x00b"))
    assert conn.state is ClientState.AUTHENTICATED  # nothing was sent
    conn = ClientConnection(tls=True)
    feed(conn, b"* OK hi\r\n")
    conn.send(Login(username="u", password="p"))
    feed(conn, b"a001 OK [CAPABILITY IMAP4rev1 BINARY LITERAL+] in\r\n")
    assert conn.send(Append(mailbox="INBOX", message=b"a\x00b")) == b"a002 APPEND INBOX ~{3+}\r\na\x00b\r\n"


def test_authenticate_without_sasl_ir_and_cancel() -> None:
    conn = ClientConnection(tls=True)
    feed(conn, b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n")
    assert conn.send(Authenticate(mechanism="PLAIN", initial_response=b"\x00u\x00p")) == b"a001 AUTHENTICATE PLAIN\r\n"
    (first,) = feed(conn, b"+ \r\n")
    assert first == Continuation(purpose=ContinuationPurpose.SASL, text="", challenge=b"", initial_response_due=True)
    assert conn.send_continuation(b"\x00u\x00p") == base64.b64encode(b"\x00u\x00p") + b"\r\n"
    (again,) = feed(conn, b"+ " + base64.b64encode(b"more?") + b"\r\n")
    assert isinstance(again, Continuation) and again.challenge == b"more?" and not again.initial_response_due
    assert conn.cancel_authentication() == b"*\r\n"
    (tagged,) = feed(conn, b"a001 BAD Authentication cancelled\r\n")
    assert isinstance(tagged, Tagged) and tagged.status == "BAD"
    assert conn.state is ClientState.NOT_AUTHENTICATED


def test_authenticate_sasl_ir_empty_initial_response() -> None:
    conn = ClientConnection(tls=True)
    feed(conn, b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=EXTERNAL] hi\r\n")
    assert conn.send(Authenticate(mechanism="EXTERNAL", initial_response=b"")) == b"a001 AUTHENTICATE EXTERNAL =\r\n"


def test_authenticate_unadvertised_mechanism_refused() -> None:
    conn = ClientConnection(tls=True)
    feed(conn, b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n")
    with pytest.raises(LocalProtocolError):
        conn.send(Authenticate(mechanism="XOAUTH2"))
    conn = ClientConnection(tls=True)
    feed(conn, b"* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] hi\r\n")
    with pytest.raises(LocalProtocolError):
        conn.send(Login(username="u", password="p"))


def test_idle_with_updates_split_anywhere() -> None:
    conn = selected()
    assert conn.send(Idle()) == b"a003 IDLE\r\n"
    assert conn.state is ClientState.IDLING
    with pytest.raises(LocalProtocolError):
        conn.idle_done()  # RFC 2177: DONE only after the "+"
    assert feed(conn, b"+ idling\r\n") == [Continuation(purpose=ContinuationPurpose.IDLE, text="idling")]
    # imapclient #519: a FETCH split in the middle must not be seen as two responses.
    assert feed(conn, b"* 6 FETCH (FLA") == []
    assert feed(conn, b"GS (\\Recent))\r\n* 7 EXI") == [FetchResponse(seq=6, items=(("FLAGS", ("\\Recent",)),))]
    assert feed(conn, b"STS\r\n* 3 EXPUNGE\r\n") == [ExistsResponse(count=7), ExpungeResponse(seq=3)]
    with pytest.raises(LocalProtocolError):
        conn.send(Noop())  # one command at a time
    assert conn.idle_done() == b"DONE\r\n"
    assert feed(conn, b"a003 OK IDLE terminated\r\n") == [
        Tagged(tag="a003", command="IDLE", status="OK", code=None, text="IDLE terminated")
    ]
    assert conn.state is ClientState.SELECTED


def test_status_search_esearch_vanished_id_other() -> None:
    conn = selected()
    conn.send(Status(mailbox="blurdybloop", items=("MESSAGES", "UIDNEXT")))
    (status, _) = feed(conn, b"* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)\r\na003 OK STATUS completed\r\n")
    assert status == StatusResponse(
        name="blurdybloop", raw_name=b"blurdybloop", items=(("MESSAGES", 231), ("UIDNEXT", 44292))
    )
    assert isinstance(status, StatusResponse) and status.get("uidnext") == 44292
    conn.send(UidSearch(criteria=SearchKey.all()))
    events = feed(
        conn,
        b"* SEARCH 2 84 882\r\n"
        b"* SEARCH\r\n"
        b"* SEARCH 1 (MODSEQ 917162500)\r\n"
        b'* ESEARCH (TAG "a004") UID MIN 2 COUNT 3 ALL 2,10:11\r\n'
        b"* VANISHED (EARLIER) 41,43:116\r\n"
        b'* ID ("name" "Dovecot" "support-url" NIL)\r\n'
        b'* NAMESPACE (("" "/")) NIL NIL\r\n'
        b"* 12 XYZ\r\n"
        b"a004 OK SEARCH completed\r\n",
    )
    assert events[:-1] == [
        SearchResponse(ids=(2, 84, 882)),
        SearchResponse(ids=()),
        SearchResponse(ids=(1,), modseq=917162500),
        ESearchResponse(
            tag="a004", uid=True, items=(("MIN", 2), ("COUNT", 3), ("ALL", UidSet(ranges=((2, 2), (10, 11)))))
        ),
        VanishedResponse(earlier=True, uids=UidSet(ranges=((41, 41), (43, 116)))),
        IdResponse(params=(("name", "Dovecot"), ("support-url", None))),
        OtherResponse(name="NAMESPACE", number=None, data=(((b"", b"/"),), None, None)),
        OtherResponse(name="XYZ", number=12, data=()),
    ]


def test_copyuid_and_rfc5530_codes_kept_as_data() -> None:
    conn = selected()
    conn.send(UidCopy(uids="1:3", mailbox="Archive"))
    (tagged,) = feed(conn, b"a003 OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n")
    assert isinstance(tagged, Tagged) and tagged.code is not None
    assert tagged.code.data == CopyUid(
        uidvalidity=38505, source=UidSet(ranges=((304, 304), (319, 320))), destination=UidSet(ranges=((3956, 3958),))
    )
    assert isinstance(tagged.code.data, CopyUid) and list(tagged.code.data.source) == [304, 319, 320]
    for code in ("UNAVAILABLE", "AUTHORIZATIONFAILED", "PRIVACYREQUIRED", "EXPIRED", "CONTACTADMIN", "LIMIT"):
        conn.send(Noop())
        (tagged,) = feed(conn, f"{conn.current_tag} NO [{code}] nope\r\n".encode())
        assert isinstance(tagged, Tagged) and tagged.code == ResponseCode(name=code, raw=code)
    conn.send(Noop())
    tag = conn.current_tag or ""
    (event, _) = feed(conn, b"* OK [MAILBOXID (F0c3236c7925428f70ec)] Object ID.\r\n" + tag.encode() + b" OK\r\n")
    assert isinstance(event, UntaggedStatus)
    assert event.code == ResponseCode(
        name="MAILBOXID", data="(F0c3236c7925428f70ec)", raw="MAILBOXID (F0c3236c7925428f70ec)"
    )
    conn.send(Noop())
    (event, _) = feed(
        conn,
        b"* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n" + conn.current_tag.encode() + b" OK\r\n",  # type: ignore[union-attr]
    )
    assert isinstance(event, UntaggedStatus) and event.code is not None
    assert event.code.data == ("\\Deleted", "\\Seen", "\\*")


def test_bodystructure_multipart_nested_with_extensions() -> None:
    conn = selected()
    conn.send(UidFetch(uids="1", items=("BODYSTRUCTURE",)))
    line = (
        b'* 1 FETCH (UID 1 BODYSTRUCTURE ((("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 120 4 '
        b'NIL NIL NIL NIL)("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "BASE64" 300 5 NIL NIL NIL NIL) '
        b'"ALTERNATIVE" ("BOUNDARY" "b2") NIL NIL NIL)'
        b'("APPLICATION" "PDF" ("NAME" "=?utf-8?q?r=C3=A9sultat.pdf?=") NIL "CR" "BASE64" 4096 "md5sum" '
        b'("ATTACHMENT" ("FILENAME" "r.pdf")) ("fr" "en") "http://x/y" (1 2))'
        b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 500 (NIL "inner" NIL NIL NIL NIL NIL NIL NIL NIL) '
        b'("TEXT" "PLAIN" NIL NIL NIL "7BIT" 10 1 NIL NIL NIL NIL) 12 NIL NIL NIL NIL)'
        b' "MIXED" ("BOUNDARY" "b1") ("inline" NIL) "de" NIL))\r\n'
    )
    (fetch, _) = feed(conn, line + b"a003 OK done\r\n")
    assert isinstance(fetch, FetchResponse)
    body = fetch.bodystructure
    from mssante.wire.imap import Disposition, MultiPart

    assert isinstance(body, MultiPart) and body.subtype == "mixed" and body.params == (("boundary", b"b1"),)
    assert body.disposition == Disposition(type="inline", params=()) and body.language == (b"de",)
    alternative, pdf, message = body.parts
    assert isinstance(alternative, MultiPart) and [p.subtype for p in alternative.parts] == ["plain", "html"]
    assert isinstance(pdf, SinglePart) and pdf.params == (("name", b"=?utf-8?q?r=C3=A9sultat.pdf?="),)
    assert pdf.description == b"CR" and pdf.md5 == b"md5sum" and pdf.location == b"http://x/y"
    assert pdf.disposition == Disposition(type="attachment", params=(("filename", b"r.pdf"),))
    assert pdf.language == (b"fr", b"en") and pdf.extension == ((1, 2),)
    assert isinstance(message, SinglePart) and message.envelope is not None and message.envelope.subject == b"inner"
    assert isinstance(message.body, SinglePart) and message.lines == 12


def test_literals_in_mailbox_names_and_nil_bodies() -> None:
    conn = selected()
    conn.send(ListMailboxes())
    events = feed(conn, b'* LIST () "/" {11}\r\nweird"name\r\r\n* LIST (\\Noselect) NIL ""\r\na003 OK\r\n')
    assert isinstance(events[0], ListResponse) and events[0].raw_name == b'weird"name\r'
    assert isinstance(events[1], ListResponse) and events[1].delimiter is None and events[1].name == ""
    conn.send(UidFetch(uids="1", items=("BODY.PEEK[1]", "BINARY.PEEK[2]")))
    events = feed(conn, b"* 1 FETCH (BODY[1] NIL BINARY[2] ~{3}\r\na\x00b UID 1)\r\na004 OK\r\n")
    assert events[0] == FetchResponse(seq=1, items=(("BODY[1]", None), ("BINARY[2]", b"a\x00b"), ("UID", 1)))


def test_text_that_looks_like_a_literal_is_text() -> None:
    conn = selected()
    conn.send(Select(mailbox="foo{5}"))
    # RFC 3501 §7.1: status responses end with text; "{5}" there must not swallow 5 octets.
    events = feed(conn, b"a003 NO Mailbox doesn't exist: foo{5}\r\n* 1 EXISTS\r\n")
    assert events == [
        Tagged(tag="a003", command="SELECT", status="NO", code=None, text="Mailbox doesn't exist: foo{5}"),
        ExistsResponse(count=1),
    ]
    assert conn.state is ClientState.AUTHENTICATED  # RFC 3501 §6.3.1: failed SELECT deselects


def test_streaming_large_literals() -> None:
    conn = selected(stream_literals_over=16)
    conn.send(UidFetch(uids="9", items=("BODY.PEEK[]",)))
    body = bytes(range(256)) * 4
    events = feed(conn, b"* 3 FETCH (UID 9 BODY[] {1024}\r\n" + body[:100])
    assert events == [LiteralChunk(data=body[:100], offset=0, total=1024)]
    events = feed(conn, body[100:] + b" FLAGS ())\r\na003 OK\r\n")
    chunk = events[0]
    assert isinstance(chunk, LiteralChunk) and chunk.last and chunk.offset == 100 and chunk.data == body[100:]
    assert events[1] == FetchResponse(seq=3, items=(("UID", 9), ("BODY[]", StreamedLiteral(size=1024)), ("FLAGS", ())))
    # small literals are still held
    conn.send(UidFetch(uids="9", items=("BODY.PEEK[]<0>",)))
    assert feed(conn, b"* 3 FETCH (BODY[]<0> {3}\r\nabc)\r\na004 OK\r\n")[0] == FetchResponse(
        seq=3, items=(("BODY[]<0>", b"abc"),)
    )


def test_state_rules() -> None:
    conn = ClientConnection(tls=True)
    with pytest.raises(LocalProtocolError):
        conn.send(Noop())  # before the greeting
    feed(conn, b"* OK hi\r\n")
    for command in (Select(mailbox="INBOX"), UidFetch(uids=1, items=("UID",)), Close(), Idle()):
        with pytest.raises(LocalProtocolError):
            conn.send(command)
    with pytest.raises(LocalProtocolError):
        conn.send(StartTLS())  # already TLS
    conn = authenticated()
    for command in (UidFetch(uids=1, items=("UID",)), Login(username="u", password="p"), Expunge()):
        with pytest.raises(LocalProtocolError):
            conn.send(command)
    conn.send(Logout())
    feed(conn, b"* BYE bye\r\na002 OK\r\n")
    assert conn.state is ClientState.LOGOUT
    with pytest.raises(LocalProtocolError):
        conn.send(Noop())


def test_capability_requirements_checked_when_known() -> None:
    conn = ClientConnection(tls=True)
    feed(conn, b"* OK [CAPABILITY IMAP4rev1] hi\r\n")
    conn.send(Login(username="u", password="p"))
    feed(conn, b"a001 OK [CAPABILITY IMAP4rev1] in\r\n")
    with pytest.raises(LocalProtocolError):
        conn.send(Idle())
    conn.send(Select(mailbox="INBOX"))
    feed(conn, b"a002 OK\r\n")
    for command in (UidMove(uids=1, mailbox="x"), UidExpunge(uids=1), Unselect(), Id()):
        with pytest.raises(LocalProtocolError):
            conn.send(command)


@pytest.mark.parametrize(
    "build",
    [
        lambda: UidFetch(uids="0", items=("UID",)),
        lambda: UidFetch(uids="1", items=("UID)\r\nA NOOP",)),
        lambda: UidFetch(uids=[], items=("UID",)),
        lambda: UidFetch(uids="1 OR 2", items=("UID",)),
        lambda: UidStore(uids=1, flags=("\\Recent",)),
        lambda: UidStore(uids=1, flags=("a b",)),
        lambda: Status(mailbox="x", items=("MESSAGES)",)),
        lambda: Authenticate(mechanism="PLAIN\r\nX"),
        lambda: Select(mailbox=b"a\x00b"),
        lambda: Append(mailbox="x", message=b"m", internaldate=dt.datetime(2026, 1, 1)),
        lambda: SearchKey.text("SUBJECT\r\n", "x"),
        lambda: SearchKey.header("X Y", "z"),
        lambda: Id(params=tuple((f"k{i}", "v") for i in range(31))),
    ],
)
def test_invalid_commands_cannot_be_built(build: object) -> None:
    with pytest.raises(LocalProtocolError):
        build()  # type: ignore[operator]


def test_envelope_group_syntax_and_rfc2047_left_raw() -> None:
    conn = selected()
    conn.send(UidFetch(uids="1", items=("ENVELOPE",)))
    (fetch, _) = feed(
        conn,
        b'* 1 FETCH (ENVELOPE (NIL "=?utf-8?B?w6l0w6k=?=" ((NIL NIL "undisclosed" NIL)(NIL NIL NIL NIL)) NIL NIL '
        b'(("=?iso-8859-1?q?Ren=E9?=" NIL "rene" "example.fr")) NIL NIL NIL NIL))\r\na003 OK\r\n',
    )
    assert isinstance(fetch, FetchResponse) and fetch.envelope is not None
    env = fetch.envelope
    assert env.subject == b"=?utf-8?B?w6l0w6k=?="
    assert env.from_ == (
        Address(name=None, route=None, mailbox=b"undisclosed", host=None),
        Address(name=None, route=None, mailbox=None, host=None),
    )
    assert env.sender == () and env.to[0].name == b"=?iso-8859-1?q?Ren=E9?="
