"""Mutation testing of the protocol cores with mutmut: how many injected bugs do the tests catch?

Run: ``.venv/bin/python benchmarks/mutation.py --target wire-sasl`` (or ``wire-imap-parser``, ``trust-crl``,
``all``); ``--show-survivors`` prints the diff of each mutant the tests missed; after adding tests,
``--again --workdir DIR`` re-tests only the survivors of the run kept in ``DIR``. Needs mutmut
(``pip install -e '.[mutation]'``). Not a test, not in CI: 5 to 20 minutes per target on one core.

Each target is run in its own scratch copy of ``src/``, ``tests/`` and ``pyproject.toml`` (under
``--workdir``, default a temporary directory) with a generated ``[tool.mutmut]`` section naming the
module to mutate and the test files that guard it, so the repository itself is never touched and the
targets do not share state. mutmut records which tests reach each mutated function and runs only
those. Hypothesis runs with a fixed seed, so a mutant is killed or not for the same reason every run.

The score is ``killed / (killed + survived)``; timeouts count as killed (the mutant hung the tests),
mutants no test reaches count as survived. Equivalent mutants (same behaviour, e.g. a changed
default that every caller overrides) survive by nature: read the survivors, do not chase 100 %.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Target:
    mutate: tuple[str, ...]  # globs relative to the repository, as mutmut's only_mutate
    tests: tuple[str, ...]  # the test files that guard it
    deselect: tuple[str, ...] = ()  # tests that read the source itself (mutmut rewrites it)


TARGETS: dict[str, Target] = {
    "wire-sasl": Target(("src/mssante/wire/sasl/*",), ("tests/wire/test_sasl.py", "tests/wire/test_mut_sasl.py")),
    "wire-imap-parser": Target(
        ("src/mssante/wire/imap/_parser.py",),
        (
            "tests/wire/test_imap_transcripts.py",
            "tests/wire/test_imap_properties.py",
            "tests/wire/test_imap_oracle.py",
            "tests/wire/test_imap_security.py",
            "tests/wire/test_imap_api.py",
            "tests/wire/test_mut_imap_parser.py",
        ),
        deselect=("tests/wire/test_imap_api.py::test_engine_does_no_io_and_modules_stay_short",),
    ),
    "trust-crl": Target(
        ("src/mssante/trust/_crl.py",), ("tests/trust/test_crl.py", "tests/trust/test_crl_edges.py")
    ),
}

# mutmut's exit-code meanings (mutmut.__main__.status_by_exit_code), folded into three outcomes.
_KILLED = {"killed", "timeout", "segfault", "caught by type check"}
_SURVIVED = {"survived", "no tests"}


def _toml_list(items: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def _prepare(name: str, target: Target, workdir: Path, *, again: bool = False, skip: tuple[str, ...] = ()) -> Path:
    """A scratch copy of the project with a ``[tool.mutmut]`` section for ``target``.

    ``again``: keep the copied sources and the mutants of the last run, refresh only the tests.
    """
    scratch = workdir / name
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    if again:
        for tree in (scratch / "tests", scratch / "mutants" / "tests"):
            shutil.rmtree(tree, ignore_errors=True)
            shutil.copytree(ROOT / "tests", tree, ignore=ignore)
        (scratch / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)  # which tests reach what: again
    else:
        if scratch.exists():
            shutil.rmtree(scratch)
        scratch.mkdir(parents=True)
        shutil.copytree(ROOT / "src", scratch / "src", ignore=ignore)
        shutil.copytree(ROOT / "tests", scratch / "tests", ignore=ignore)
    pyproject = (ROOT / "pyproject.toml").read_text("utf-8")
    pyproject = re.sub(r"(?ms)^\[tool\.mutmut\].*?(?=^\[|\Z)", "", pyproject)
    tests = [t for t in target.tests if (ROOT / t).exists() and t not in skip]
    deselect = [arg for test in target.deselect for arg in ("--deselect", test)]
    pyproject += (
        "\n[tool.mutmut]\n"
        'source_paths = ["src/"]\n'
        f"only_mutate = {_toml_list(target.mutate)}\n"
        f"pytest_add_cli_args_test_selection = {_toml_list(tests)}\n"
        f"pytest_add_cli_args = {_toml_list(['-p', 'no:cacheprovider', '--hypothesis-seed=0', *deselect])}\n"
        # A mutant that makes a loop spin is a kill; do not wait 30x the tests' CPU time to call it.
        "timeout_multiplier = 3.0\n"
    )
    (scratch / "pyproject.toml").write_text(pyproject, "utf-8")
    if again:
        (scratch / "mutants" / "pyproject.toml").write_text(pyproject, "utf-8")
    return scratch


def _outcomes(scratch: Path) -> dict[str, str]:
    """mutant name → mutmut status, from the ``.meta`` files of the run."""
    status_by_exit_code = importlib.import_module("mutmut.__main__").status_by_exit_code
    statuses: dict[str, str] = {}
    for meta in (scratch / "mutants").rglob("*.meta"):
        data = json.loads(meta.read_text("utf-8"))
        for key, code in data.get("exit_code_by_key", {}).items():
            statuses[key] = status_by_exit_code[code]
    return statuses


def run(
    name: str, *, workdir: Path, children: int, show: bool, again: bool = False, skip: tuple[str, ...] = ()
) -> tuple[int, int]:
    """Run one target; print its score and survivors; return (killed, survived)."""
    target = TARGETS[name]
    retry: list[str] = []
    previous: dict[str, str] = {}
    if again:
        if not (workdir / name / "mutants").is_dir():
            raise SystemExit(f"--again needs a previous run of {name} in {workdir}")
        previous = _outcomes(workdir / name)
        retry = sorted(k for k, s in previous.items() if s in _SURVIVED)
    scratch = _prepare(name, target, workdir, again=again, skip=skip)
    started = time.monotonic()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mutmut", "run", "--max-children", str(children), *retry],
        cwd=scratch, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False,
    )
    elapsed = time.monotonic() - started
    statuses = _outcomes(scratch)
    if again:  # a new test selection makes mutmut forget its verdicts: keep the old kills, take the retried
        statuses = {**previous, **{key: statuses[key] for key in retry if key in statuses}}
    if done.returncode != 0 or not statuses:
        print(f"{name}: mutmut failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
        return 0, 0
    counts = Counter(statuses.values())
    killed = sum(n for s, n in counts.items() if s in _KILLED)
    survived = sum(n for s, n in counts.items() if s in _SURVIVED)
    score = killed / (killed + survived) if killed + survived else 0.0
    detail = ", ".join(f"{s} {n}" for s, n in sorted(counts.items()))
    print(f"{name}: score {score:.1%} ({killed} killed / {killed + survived}; {detail}) in {elapsed:.0f} s")
    survivors = sorted(k for k, s in statuses.items() if s in _SURVIVED)
    for key in survivors:
        print(f"  survived: {key}")
        if show:
            diff = subprocess.run(
                [sys.executable, "-m", "mutmut", "show", key], cwd=scratch, capture_output=True, text=True,
                check=False,
            ).stdout
            print("    " + "\n    ".join(diff.strip().splitlines()))
    return killed, survived


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=[*TARGETS, "all"], default="all")
    parser.add_argument("--workdir", type=Path, default=None, help="where the scratch copies go (kept)")
    parser.add_argument("--children", type=int, default=1, help="mutants tested at once (default 1)")
    parser.add_argument("--show-survivors", action="store_true", help="print the diff of each survivor")
    parser.add_argument("--again", action="store_true",
                        help="re-test only the survivors of the last run in --workdir against the current tests "
                             "(the sources under test must not have changed since)")
    parser.add_argument("--skip-tests", action="append", default=[], metavar="FILE",
                        help="leave a test file out of the selection (to measure what it adds); repeatable")
    args = parser.parse_args()
    if args.again and args.workdir is None:
        parser.error("--again needs the --workdir of the previous run")
    names = list(TARGETS) if args.target == "all" else [args.target]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mssante-mutation-"))
    print(f"scratch copies in {workdir}")
    for name in names:
        run(name, workdir=workdir, children=args.children, show=args.show_survivors, again=args.again,
            skip=tuple(args.skip_tests))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
