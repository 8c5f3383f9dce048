"""Sans-IO protocol engines: bytes in, events out; commands in, bytes out.

Nothing under :mod:`mssante.wire` opens a socket, reads a clock or draws a random number
(house rule 1). Drivers that do the I/O live elsewhere and stay short.
"""

from __future__ import annotations

__all__: list[str] = []
