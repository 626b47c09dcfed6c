"""`oci-build -`: the build context read from stdin, as `docker build -` reads it.

Like Docker's CLI (`DetectArchiveReader`), the first 512 bytes decide: a compressed stream
(gzip, bzip2, xz, zstd) or a tar header is the context, as a tar archive, with its
Dockerfile inside (`-f` names its path in the archive); anything else is a Dockerfile on
its own, built with an empty context. The archive is unpacked with ADD's code (`archive`:
caps, names kept below the context's root, symlinks resolved inside it) into the build's
scratch folder, which goes with the build (or, killed, with the next one).
"""

from __future__ import annotations

import dataclasses
import os
import tarfile
from typing import TYPE_CHECKING

from oci.dockerfile import archive
from oci.dockerfile.tree import Owner, Tree
from oci.errors import UsageError
from oci.unpack.options import Budget

if TYPE_CHECKING:
    from oci.dockerfile.build import BuildOptions

LABEL = "<stdin>"


def looks_like_archive(head: bytes) -> bool:
    """Docker's IsArchive: compression magic, or a valid tar header."""
    if archive._kind(head) is not None:
        return True
    if len(head) < tarfile.BLOCKSIZE:
        return False
    try:
        tarfile.TarInfo.frombuf(head[:tarfile.BLOCKSIZE], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def context_from_stream(options: BuildOptions, folder: str) -> BuildOptions:
    """The options with the stream's context unpacked into `folder` (or its Dockerfile read)."""
    from oci.dockerfile.build import MAX_DOCKERFILE

    assert options.context_stream is not None
    stream = archive._Peeked(options.context_stream, tarfile.BLOCKSIZE)
    os.mkdir(folder, 0o755)
    if not looks_like_archive(stream.head):
        if options.dockerfile is not None:
            raise UsageError("-f names a file in the context; stdin holds a Dockerfile, not a context archive")
        data = stream.head + stream.raw.read(MAX_DOCKERFILE + 1 - len(stream.head))
        if len(data) > MAX_DOCKERFILE:
            raise UsageError(f"{LABEL}: larger than {MAX_DOCKERFILE >> 20} MiB: not a Dockerfile")
        return dataclasses.replace(options, context=folder, context_stream=None, dockerfile_text=data.decode(
            "utf-8", "surrogateescape"), dockerfile=None)
    with Tree(folder, layer=False) as tree:
        archive.unpack(tree, stream, "/", Owner(), Budget(options.max_size, options.max_entries),  # type: ignore[arg-type]
                       LABEL)
    dockerfile = None
    if options.dockerfile is not None:
        dockerfile = os.path.join(folder, os.path.normpath("/" + options.dockerfile).lstrip("/"))
    return dataclasses.replace(options, context=folder, context_stream=None, dockerfile=dockerfile,
                               context_label=LABEL)
