"""``mssante demo``: the whole system at work, on this machine."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from mssante.demo import SuiteOptions

__all__ = ["demo"]


async def _main(state_dir: Path, once: bool, suite: SuiteOptions) -> None:
    """Run the demo; Ctrl-C (or SIGTERM) before it serves stops it at once.

    Raises:
        KeyboardInterrupt: interrupted before the demo finished (the CLI exits 130); the task is
            cancelled, so no conformance report is written for a run that did not finish.
        MssanteError: a step failed (see :func:`mssante.demo.run_demo`).
    """
    from mssante.demo import run_demo

    stop, serving = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(run_demo(state_dir, once=once, say=lambda line: click.echo(line), stop=stop,
                                        serving=serving, suite=suite))
    interrupt = asyncio.create_task(stop.wait())
    await asyncio.wait({task, interrupt}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        interrupt.cancel()
        task.result()  # the demo's own outcome (its exception, if any)
        return
    if serving.is_set():  # Ctrl-C while serving the webmail: the normal end
        await task
        return
    task.cancel()  # interrupted mid-demo: stop now, write nothing more
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    raise KeyboardInterrupt


@click.command("demo")
@click.option(
    "--state-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".sandbox"), show_default=True,
    help="Sandbox state directory (keys, certificates, sandbox.json, reports).",
)
@click.option("--once", is_flag=True, help="Stop after the demo instead of serving the sandbox (CI).")
# Test knobs (hidden): the product reference the judged client declares, the cases the suite runs.
@click.option("--suite-product-reference", default=None, hidden=True)
@click.option("--suite-case", "suite_cases", multiple=True, hidden=True)
def demo(state_dir: Path, once: bool, suite_product_reference: str | None, suite_cases: tuple[str, ...]) -> None:
    """Start the sandbox and show an LPS PER (via the bridge) and an LPS APP exchanging documents.

    Exit codes: 0 the demo ran and our client is conformant, 1 a step or a conformance case
    failed, 130 interrupted (Ctrl-C) before the end: no report is written for that run.
    """
    from mssante.demo import SuiteOptions

    suite = SuiteOptions(cases=suite_cases)
    if suite_product_reference is not None:
        suite = SuiteOptions(product_reference=suite_product_reference, cases=suite_cases)
    asyncio.run(_main(state_dir, once, suite))
