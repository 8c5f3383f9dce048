"""``mssante demo``: the whole system at work, on this machine."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import click

__all__ = ["demo"]


async def _main(state_dir: Path, once: bool) -> None:
    from mssante.demo import run_demo

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await run_demo(state_dir, once=once, say=lambda line: click.echo(line), stop=stop)


@click.command("demo")
@click.option(
    "--state-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".sandbox"), show_default=True,
    help="Sandbox state directory (keys, certificates, sandbox.json, reports).",
)
@click.option("--once", is_flag=True, help="Stop after the demo instead of serving the sandbox (CI).")
def demo(state_dir: Path, once: bool) -> None:
    """Start the sandbox and show an LPS PER (via the bridge) and an LPS APP exchanging documents."""
    asyncio.run(_main(state_dir, once))
