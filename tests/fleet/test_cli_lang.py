"""``mssante fleet`` speaks French by default and English with ``--lang en``, its errors included."""

from __future__ import annotations

import asyncio
import json

import pytest

from mssante.fleet import FleetStore
from tests.cli._run import exit_code
from tests.fleet._support import APPS, STRUCTURE, TOKEN_LIKE
from tests.fleet.conftest import RedisServer

pytestmark = pytest.mark.slow


async def run(capsys: pytest.CaptureFixture[str], lang: str | None, *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(exit_code, [*(("--lang", lang) if lang else ()), "fleet", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("lang", "said"), [
    (None, {
        "added": f"BAL ajoutée : {APPS[0]} (applicative, référence {STRUCTURE}, dossier INBOX)\n",
        "listed": f"{APPS[0]} [APP, référence {STRUCTURE}] non surveillée\n",
        "status": "BAL : 1 dans la flotte, 0 surveillées, 1 en attente d'un worker, 0 arrêtées\nWorkers actifs : 0\n"
                  "Flux d'événements : 0 entrées\n",
        "unknown": f"mssante : erreur : BAL inconnue de la flotte : {APPS[1]}\n",
        "token": "jamais un secret tel qu'un jeton",
        "redis": "mssante : erreur : Redis injoignable à redis://127.0.0.1:1/0 (--redis ou MSSANTE_FLEET_REDIS) : ",
        "removed": f"BAL retirée : {APPS[0]}\n",
        "empty": "Aucune BAL dans la flotte.\n",
    }),
    ("en", {
        "added": f"BAL added: {APPS[0]} (application, reference {STRUCTURE}, folder INBOX)\n",
        "listed": f"{APPS[0]} [APP, reference {STRUCTURE}] not watched\n",
        "status": "BAL: 1 in the fleet, 0 watched, 1 waiting for a worker, 0 stopped\nActive workers: 0\n"
                  "Event stream: 0 entries\n",
        "unknown": f"mssante: error: BAL not in the fleet: {APPS[1]}\n",
        "token": "never a secret such as a token",
        "redis": "mssante: error: Redis is unreachable at redis://127.0.0.1:1/0 (--redis or MSSANTE_FLEET_REDIS): ",
        "removed": f"BAL removed: {APPS[0]}\n",
        "empty": "No BAL in the fleet.\n",
    }),
])
async def test_messages_and_errors_in_the_chosen_language(redis_server: RedisServer, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch, lang: str | None,
                                                          said: dict[str, str]) -> None:
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)  # no locale: French, the default
    r = ("--redis", redis_server.url)
    assert await run(capsys, lang, "add", APPS[0], "--kind", "APP", "--ref", STRUCTURE, *r) == (0, said["added"], "")
    assert await run(capsys, lang, "list", *r) == (0, said["listed"], "")
    assert await run(capsys, lang, "status", *r) == (0, said["status"], "")
    code, _, err = await run(capsys, lang, "remove", APPS[1], *r)
    assert (code, err) == (2, said["unknown"])
    code, _, err = await run(capsys, lang, "add", APPS[1], "--kind", "PER", "--ref", TOKEN_LIKE, *r)
    assert code == 2 and said["token"] in err and TOKEN_LIKE not in err and "Traceback" not in err
    code, _, err = await run(capsys, lang, "list", "--redis", "redis://127.0.0.1:1/0")
    assert code == 3 and err.startswith(said["redis"]) and err.count("\n") == 1
    code, out, _ = await run(capsys, lang, "list", "--json", *r)  # JSON does not depend on the language
    assert code == 0 and [row["address"] for row in json.loads(out)] == [APPS[0]]
    assert await run(capsys, lang, "remove", APPS[0], *r) == (0, said["removed"], "")
    assert await run(capsys, lang, "list", *r) == (0, said["empty"], "")


@pytest.mark.parametrize(("lang", "message", "error"), [
    (None, f"{APPS[0]} : nouveau message UID 3 (UIDVALIDITY 7) de labo@x.fr « CR » <m@x>, 120 octets",
     f"{APPS[1]} : erreur, surveillance arrêtée (ConfigError: bad reference)"),
    ("en", f"{APPS[0]}: new message UID 3 (UIDVALIDITY 7) from labo@x.fr “CR” <m@x>, 120 octets",
     f"{APPS[1]}: error, watch stopped (ConfigError: bad reference)"),
])
async def test_events_are_described_in_the_chosen_language(store: FleetStore, redis_server: RedisServer,
                                                           capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch, lang: str | None,
                                                           message: str, error: str) -> None:
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    await store.redis.xadd(store.keys.events, {
        "kind": "message", "bal": APPS[0], "folder": "INBOX", "uidvalidity": "7", "uid": "3", "message_id": "<m@x>",
        "subject": "CR", "from": "labo@x.fr", "to": APPS[0], "date": "", "size": "120"})
    await store.redis.xadd(store.keys.events, {"kind": "bal-error", "bal": APPS[1], "bal_kind": "APP", "worker": "w",
                                               "reason": "ConfigError: bad reference"})
    code, out, _ = await run(capsys, lang, "events", "--group", "g", "--consumer", "c", "--redis", redis_server.url)
    assert code == 0 and out.splitlines() == [message, error]
