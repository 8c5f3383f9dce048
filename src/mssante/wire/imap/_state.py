"""The client state machine, as tables (h11 ``_state.py`` style).

Rule 1: everything that changes the connection state lives in this file, driven by the tables
below (:data:`TRANSITIONS` for the session, :data:`PHASES` for the command in flight);
``_connection.py`` only reports what happened.

Rule 2: two coordinates. ``base`` is the RFC 3501 §3 session state (plus the greeting wait,
the TLS handshake gap, and the ERROR sink). ``phase`` is where the one command in flight
stands (waiting for its tagged response, for a ``+`` before a literal, inside a SASL exchange,
inside IDLE). The public :class:`ClientState` is derived from both by :data:`TRANSIENT`.
"""

from __future__ import annotations

import enum
from typing import Final

from mssante.errors import LocalProtocolError, RemoteProtocolError

from ._events import ContinuationPurpose

__all__ = ["Action", "ClientState", "Phase", "StateMachine"]


class ClientState(enum.Enum):
    """What the client connection may do now (RFC 3501 §3 states plus transient ones)."""

    AWAITING_GREETING = "AWAITING_GREETING"
    NOT_AUTHENTICATED = "NOT_AUTHENTICATED"
    AUTHENTICATED = "AUTHENTICATED"
    SELECTED = "SELECTED"
    LOGOUT = "LOGOUT"
    STARTTLS_PENDING = "STARTTLS_PENDING"  # STARTTLS sent, tagged response awaited
    TLS_HANDSHAKE = "TLS_HANDSHAKE"  # STARTTLS OK: the driver must call tls_established()
    AUTHENTICATING = "AUTHENTICATING"  # AUTHENTICATE or LOGIN in flight
    IDLING = "IDLING"  # IDLE in flight (RFC 2177)
    APPENDING_LITERAL = "APPENDING_LITERAL"  # a synchronizing literal awaits "+" or send_literal()
    ERROR = "ERROR"  # the stream cannot be trusted any more (limit, garbage, injection)


class Phase(enum.Enum):
    """Where the command in flight stands."""

    READY = "READY"  # no command in flight
    WAITING = "WAITING"  # waiting for the tagged response
    LITERAL_WAIT = "LITERAL_WAIT"  # synchronizing literal announced, waiting for "+"
    LITERAL_GO = "LITERAL_GO"  # "+" received: the driver must call send_literal()
    SASL_WAIT = "SASL_WAIT"  # AUTHENTICATE: waiting for a challenge or the tagged response
    SASL_GO = "SASL_GO"  # challenge received: send_continuation() or cancel_authentication()
    IDLE_WAIT = "IDLE_WAIT"  # IDLE sent, waiting for "+"
    IDLING = "IDLING"  # IDLE active: untagged data flows; idle_done() ends it
    DONE_SENT = "DONE_SENT"  # DONE sent, waiting for the tagged response


class Action(enum.Enum):
    """Things the client sends in the middle of a command."""

    SEND_LITERAL_MORE = "SEND_LITERAL_MORE"  # a literal, and another synchronizing one follows
    SEND_LITERAL_LAST = "SEND_LITERAL_LAST"
    SEND_CONTINUATION = "SEND_CONTINUATION"
    CANCEL = "CANCEL"  # "*" (RFC 3501 §6.2.2)
    DONE = "DONE"  # RFC 2177 §3


_ANY: Final = frozenset({"CAPABILITY", "NOOP", "LOGOUT", "ID"})  # RFC 3501 §6.1, RFC 2971 §3.1
_AUTHENTICATED: Final = _ANY | {"SELECT", "EXAMINE", "LIST", "STATUS", "APPEND", "IDLE"}  # RFC 3501 §6.3

#: Commands that may start in each base state (RFC 3501 §6.1-6.4, RFC 5161 §3.1 for ENABLE).
COMMANDS_ALLOWED: Final[dict[ClientState, frozenset[str]]] = {
    ClientState.NOT_AUTHENTICATED: _ANY | {"STARTTLS", "AUTHENTICATE", "LOGIN"},  # RFC 3501 §6.2
    ClientState.AUTHENTICATED: _AUTHENTICATED | {"ENABLE"},
    ClientState.SELECTED: _AUTHENTICATED
    | {"CLOSE", "UNSELECT", "EXPUNGE", "UID SEARCH", "UID FETCH", "UID STORE", "UID COPY", "UID MOVE", "UID EXPUNGE"},
}

#: The phase a command starts in (a synchronizing literal overrides this with LITERAL_WAIT).
FIRST_PHASE: Final[dict[str, Phase]] = {"AUTHENTICATE": Phase.SASL_WAIT, "IDLE": Phase.IDLE_WAIT}

# Triggers of base-state transitions: "greeting:<status>", "<OK|NO>:<command>" for a tagged
# completion (BAD counts as NO), "tls_established" from the driver, "BYE" for an untagged BYE.
_SESSION: Final = (ClientState.NOT_AUTHENTICATED, ClientState.AUTHENTICATED, ClientState.SELECTED)

#: THE session transition table: base state -> trigger -> next base state. Absent: unchanged.
TRANSITIONS: Final[dict[ClientState, dict[str, ClientState]]] = {
    ClientState.AWAITING_GREETING: {  # RFC 3501 §7.1, §3
        "greeting:OK": ClientState.NOT_AUTHENTICATED,
        "greeting:PREAUTH": ClientState.AUTHENTICATED,
        "greeting:BYE": ClientState.LOGOUT,
    },
    ClientState.NOT_AUTHENTICATED: {
        "OK:STARTTLS": ClientState.TLS_HANDSHAKE,  # RFC 3501 §6.2.1
        "OK:AUTHENTICATE": ClientState.AUTHENTICATED,  # §6.2.2
        "OK:LOGIN": ClientState.AUTHENTICATED,  # §6.2.3
    },
    ClientState.TLS_HANDSHAKE: {"tls_established": ClientState.NOT_AUTHENTICATED},
    ClientState.AUTHENTICATED: {
        "OK:SELECT": ClientState.SELECTED,  # §6.3.1
        "OK:EXAMINE": ClientState.SELECTED,  # §6.3.2
    },
    ClientState.SELECTED: {
        # §6.3.1: a failed SELECT/EXAMINE leaves no mailbox selected.
        "NO:SELECT": ClientState.AUTHENTICATED,
        "NO:EXAMINE": ClientState.AUTHENTICATED,
        "OK:CLOSE": ClientState.AUTHENTICATED,  # §6.4.2
        "OK:UNSELECT": ClientState.AUTHENTICATED,  # RFC 3691
    },
}
for _state in _SESSION:  # §6.1.3 LOGOUT, §7.1.5 BYE: from any session state
    TRANSITIONS[_state].update({"OK:LOGOUT": ClientState.LOGOUT, "BYE": ClientState.LOGOUT})
TRANSITIONS[ClientState.TLS_HANDSHAKE]["BYE"] = ClientState.LOGOUT

#: The command-in-flight table: phase -> trigger -> next phase. Triggers: "+" (a continuation
#: request, RFC 3501 §7.5) or an :class:`Action` the client takes mid-command.
PHASES: Final[dict[Phase, dict[str | Action, Phase]]] = {
    Phase.LITERAL_WAIT: {"+": Phase.LITERAL_GO},
    Phase.LITERAL_GO: {Action.SEND_LITERAL_MORE: Phase.LITERAL_WAIT, Action.SEND_LITERAL_LAST: Phase.WAITING},
    Phase.SASL_WAIT: {"+": Phase.SASL_GO},  # RFC 3501 §6.2.2
    Phase.SASL_GO: {Action.SEND_CONTINUATION: Phase.SASL_WAIT, Action.CANCEL: Phase.WAITING},
    Phase.IDLE_WAIT: {"+": Phase.IDLING},  # RFC 2177 §3
    Phase.IDLING: {Action.DONE: Phase.DONE_SENT},
}

#: What a "+" means, by the phase it arrived in.
CONTINUATION_PURPOSE: Final[dict[Phase, ContinuationPurpose]] = {
    Phase.LITERAL_WAIT: ContinuationPurpose.LITERAL,
    Phase.SASL_WAIT: ContinuationPurpose.SASL,
    Phase.IDLE_WAIT: ContinuationPurpose.IDLE,
}

#: Public view of a command in flight: (command, phase) -> state; then phase alone.
TRANSIENT: Final[dict[tuple[str, Phase], ClientState]] = {
    ("STARTTLS", Phase.WAITING): ClientState.STARTTLS_PENDING,
    **{("AUTHENTICATE", p): ClientState.AUTHENTICATING for p in Phase if p is not Phase.READY},
    **{("LOGIN", p): ClientState.AUTHENTICATING for p in Phase if p is not Phase.READY},
    **{("IDLE", p): ClientState.IDLING for p in Phase if p is not Phase.READY},
}
TRANSIENT_BY_PHASE: Final[dict[Phase, ClientState]] = {
    Phase.LITERAL_WAIT: ClientState.APPENDING_LITERAL,
    Phase.LITERAL_GO: ClientState.APPENDING_LITERAL,
}


class StateMachine:
    """Holds ``base``, ``phase`` and the command in flight; every change goes through a table."""

    def __init__(self) -> None:
        self.base = ClientState.AWAITING_GREETING
        self.phase = Phase.READY
        self.command: str | None = None

    @property
    def state(self) -> ClientState:
        """The public state."""
        if self.base is ClientState.ERROR or self.command is None:
            return self.base
        return TRANSIENT.get((self.command, self.phase)) or TRANSIENT_BY_PHASE.get(self.phase) or self.base

    def _move(self, trigger: str) -> None:
        self.base = TRANSITIONS.get(self.base, {}).get(trigger, self.base)

    def on_greeting(self, status: str) -> None:
        """The greeting arrived (the caller checked we were waiting for it)."""
        self._move(f"greeting:{status}")

    def start(self, command: str, sync_literal: bool) -> None:
        """A command is being sent.

        Raises:
            LocalProtocolError: a command is already in flight, or ``command`` is not allowed in
                this state (RFC 3501 §3, §6).
        """
        if self.phase is not Phase.READY:
            raise LocalProtocolError(f"cannot send {command}: {self.command} is still in flight (no pipelining)")
        if command not in COMMANDS_ALLOWED.get(self.base, frozenset()):
            raise LocalProtocolError(f"{command} is not allowed in state {self.base.value} (RFC 3501 §6)")
        self.command = command
        self.phase = Phase.LITERAL_WAIT if sync_literal else FIRST_PHASE.get(command, Phase.WAITING)

    def on_continuation(self) -> ContinuationPurpose:
        """A ``+`` arrived.

        Raises:
            RemoteProtocolError: no continuation was expected now (RFC 3501 §7.5).
        """
        nxt = PHASES.get(self.phase, {}).get("+")
        if nxt is None:
            raise RemoteProtocolError(f"unexpected continuation request in phase {self.phase.value}")
        purpose = CONTINUATION_PURPOSE[self.phase]
        self.phase = nxt
        return purpose

    def act(self, action: Action) -> None:
        """The client sends something mid-command.

        Raises:
            LocalProtocolError: ``action`` is not possible now.
        """
        nxt = PHASES.get(self.phase, {}).get(action)
        if nxt is None:
            raise LocalProtocolError(f"cannot {action.value} in phase {self.phase.value} ({self.command or 'idle'})")
        self.phase = nxt

    def on_tagged(self, ok: bool) -> str:
        """The tagged response of the command in flight arrived; return that command's name.

        Raises:
            RemoteProtocolError: no command was in flight.
        """
        if self.command is None:
            raise RemoteProtocolError("tagged response while no command is in flight")
        command = self.command
        self._move(f"{'OK' if ok else 'NO'}:{command}")
        self.command = None
        self.phase = Phase.READY
        return command

    def on_bye(self) -> None:
        """``* BYE``: the server closes the session (RFC 3501 §7.1.5)."""
        self._move("BYE")

    def tls_established(self) -> None:
        """The driver finished the TLS handshake after STARTTLS OK.

        Raises:
            LocalProtocolError: not in the TLS_HANDSHAKE state.
        """
        if self.base is not ClientState.TLS_HANDSHAKE:
            raise LocalProtocolError(f"tls_established() in state {self.state.value}, expected TLS_HANDSHAKE")
        self._move("tls_established")

    def fail(self) -> None:
        """Enter the ERROR sink: the byte stream can no longer be trusted."""
        self.base = ClientState.ERROR
        self.command = None
        self.phase = Phase.READY
