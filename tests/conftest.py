"""Settings shared by the whole suite: Hypothesis profiles (see tests/_hypothesis.py), the locale, a
garbage collection after each module (a leaked socket fails the module that leaked it), the order
modules are dealt to the xdist workers."""

from __future__ import annotations

import gc
import json
import os
import resource
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import tests._hypothesis  # noqa: F401 - registers and loads the Hypothesis profile
from tests._ports import sandbox_state_dir

# The messages people read follow the locale (mssante._i18n): the suite pins C.UTF-8, which every
# Debian machine has and which gives French (the default of a toolkit for French users), so that its
# assertions do not depend on the machine's LANG. A locale the machine lacks (fr_FR.UTF-8 on a bare
# Debian) would leave other programs (the JDK of tests/java) in ASCII.
for _name in ("LC_ALL", "LC_MESSAGES", "LANGUAGE"):
    os.environ.pop(_name, None)
os.environ["LANG"] = "C.UTF-8"


@pytest.fixture(scope="module")
def sandbox_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One sandbox state directory for a module whose sandboxes run one after the other.

    The test PKI is built by the first sandbox (about 2 s on a busy machine) and loaded by the next
    ones (0.1 s). Mailboxes, journal and faults live in each sandbox's memory: every test starts
    from empty ones. The HTTP port the PKI publishes its CRLs on lies below the ephemeral range
    (tests/_ports.py), where no outgoing connection takes it between two sandboxes.
    """
    return sandbox_state_dir(tmp_path_factory.mktemp("sandbox-state"))


# -- leaks are reported by the module that leaks ------------------------------------------------------
# A socket, transport or file left open and unreachable in a reference cycle is only finalized when the
# garbage collector runs, and its ResourceWarning (an error: filterwarnings in pyproject.toml) then fails
# whichever test of the worker happens to trigger the collection, often in another module. Collecting at
# the end of every module makes the leaking module fail, in its last test's teardown. To see the line
# that opened the object: ``PYTHONTRACEMALLOC=20 .venv/bin/pytest tests/x/test_y.py``.


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move what exists after collection (modules, test functions, parameters) out of the collector's way.

    The collections after each module then scan only what the tests created (``gc.freeze``).
    """
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="module", autouse=True)
def _collect_garbage_after_each_module() -> Iterator[None]:
    """A full garbage collection once the module's tests and fixtures are done (see above)."""
    yield
    gc.collect()


# -- the order modules are dealt to the xdist workers ------------------------------------------------
# scripts/test.sh runs ``-n 6 --dist loadfile --no-loadscope-reorder``: a module goes whole to one
# worker, in collection order. Dealing the longest modules first (longest-processing-time first)
# lets the workers finish together instead of one waiting out a 40 s module dealt last.
# tests/module_seconds.json holds the measured seconds per module (scripts/module_seconds.py
# refreshes it from a JUnit report); a module it does not know weighs 0.1 s per test.
_SECONDS_FILE = Path(__file__).with_name("module_seconds.json")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, put the modules in decreasing order of measured duration (stable within a module)."""
    if not hasattr(config, "workerinput"):
        return  # a plain run keeps the usual order
    try:
        seconds: dict[str, float] = json.loads(_SECONDS_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::", 1)[0], []).append(item)

    def weight(module: str) -> float:
        return float(seconds.get(module, 0.1 * len(modules[module])))

    items[:] = [item for module in sorted(modules, key=weight, reverse=True) for item in modules[module]]


# -- the timeline of a run ---------------------------------------------------------------------------
# Under xdist each test records its worker, the time its setup started and the CPU seconds it took
# (its worker's, and its waited-for subprocesses') in the JUnit report (``--junitxml``, which
# scripts/test.sh writes): scripts/module_seconds.py reads them back to print each worker's timeline
# (which module ran where and when, its CPU, how long each worker idled at the end) and to refresh
# tests/module_seconds.json with each module's wall time.


_CPU_AT_SETUP = pytest.StashKey[float]()


def _cpu_seconds() -> float:
    """CPU seconds of this process and of the children it waited for (servers, JVMs, CLIs)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        item.user_properties.append(("xdist_worker", worker))
        item.user_properties.append(("started", f"{time.time():.3f}"))
        item.stash[_CPU_AT_SETUP] = _cpu_seconds()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """After the test's fixtures are finalized: the CPU seconds its setup, call and teardown took."""
    started = item.stash.get(_CPU_AT_SETUP, None)
    if started is not None:
        item.user_properties.append(("cpu", f"{_cpu_seconds() - started:.3f}"))

