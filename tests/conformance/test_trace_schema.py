"""The trace format is language-neutral: ``docs/schemas/trace.schema.json`` describes what the judge accepts."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import jsonschema

from mssante.conformance._cases_traces import trace_problems
from mssante.trace import make_record

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "schemas" / "trace.schema.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def test_schema_is_valid() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_mssante_trace_records_follow_the_schema_and_pass_the_judge() -> None:
    record = make_record(author="899700000001", bal="marie.curie@mss.sandbox.test", action="send",
                         request="MAIL FROM:<marie.curie@mss.sandbox.test> RCPT TO:<x@mss.sandbox.test>",
                         response="250 2.0.0 Ok", ok=True)
    data = json.loads(record.to_json())
    assert not list(VALIDATOR.iter_errors(data))
    records, problems = trace_problems([record.to_json()], since=0)
    assert records == [data] and problems == []


def test_what_the_schema_refuses_the_judge_refuses() -> None:
    good = {"at": datetime.now().astimezone().isoformat(), "author": "899700000001",
            "bal": "marie.curie@mss.sandbox.test", "action": "send", "request": "DATA", "response": "250 Ok",
            "ok": True}
    bad = [
        {**good, "at": datetime.now().isoformat()},  # no UTC offset
        {**good, "author": ""},
        {key: value for key, value in good.items() if key != "response"},
    ]
    for item in bad:
        assert list(VALIDATOR.iter_errors(item)), item
        _, problems = trace_problems([json.dumps(item)], since=0)
        assert problems, item
