"""Build progress on stderr, as Docker and buildah print it.

    [1/2] STEP 2/5: RUN make
    (the step's output)
    --> 3f2a1b0c9d8e
    [2/2] STEP 3/4: COPY --from=build /app /app
    --> Using cache 7c1d2e3f4a5b
    COMMIT ./images:app
    --> 9a8b7c6d5e4f

The stage prefix appears when the Dockerfile has several stages. Step lines are log lines
(no redrawing), so they read the same on a terminal and in a CI log.
"""

from __future__ import annotations

import sys
from typing import TextIO

from oci import log
from oci.digest import Digest
from oci.dockerfile.instructions import Stage


def _short(digest: Digest | str | None) -> str:
    text = str(digest) if digest is not None else ""
    return text.partition(":")[2][:12] if ":" in text else text[:12]


class Progress:
    """Writes the build's step lines; quiet writes nothing but warnings."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.prefix = ""

    def _line(self, text: str) -> None:
        if not self.quiet:
            self.stream.write(text + "\n")
            self.stream.flush()

    def flush(self) -> None:
        self.stream.flush()

    def stage(self, stage: Stage, count: int) -> None:
        self.prefix = f"[{stage.index + 1}/{count}] " if count > 1 else ""

    def step(self, number: int, total: int, text: str) -> None:
        first = text.splitlines()[0] if text else text
        self._line(f"{self.prefix}STEP {number}/{total}: {first}")

    def config_step(self) -> None:
        pass

    def cached(self, digest: Digest | None) -> None:
        self._line(f"--> Using cache {_short(digest)}" if digest else "--> Using cache (no change)")

    def done(self, digest: Digest | None) -> None:
        self._line(f"--> {_short(digest)}" if digest else "--> (no change)")

    def note(self, text: str) -> None:
        self._line(f"--> {text}")

    def commit(self, name: str, digest: Digest | str) -> None:
        self._line(f"COMMIT {name}")
        self._line(f"--> {_short(digest)}")

    def warn(self, text: str) -> None:
        """A warning, as every warning of the library travels (oci.log: the command's stderr)."""
        log.warning(text)
