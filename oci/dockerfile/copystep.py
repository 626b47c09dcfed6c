"""COPY and ADD: sources from the context, another stage or an image, URLs; written into the
stage's root with Docker's rules (see `executor`'s module doc for the semantics, buildah's)."""

from __future__ import annotations

import copy
import functools
import hashlib
import io
import os
import posixpath
import re
import tarfile
import time
from typing import TYPE_CHECKING, BinaryIO, Callable
from urllib.parse import urlsplit

from oci.build.entry import Entry
from oci.dockerfile import archive, base, remote
from oci.dockerfile import instructions as ins
from oci.dockerfile.context import Found, Item, SourceRoot, has_wildcard
from oci.dockerfile.mounts import Overlay, Workspace
from oci.dockerfile.parser import Heredoc
from oci.dockerfile.state import Settings, State, keyed_config, oci_layer, owner_of, step_key, to_json
from oci.dockerfile.tree import Owner, Tree
from oci.dockerfile.words import Lexer
from oci.errors import InvalidInput, NotFound, OciError, Unsupported

_CHMOD = re.compile(r"^[0-7]{1,4}$")


class CopySteps:
    """The COPY and ADD instructions of the executor (a part of it, kept apart for size)."""

    settings: Settings
    program: ins.Program
    global_args: dict[str, str]

    if TYPE_CHECKING:
        def _expand(self, word: str, env: dict[str, str], at: ins.Instruction) -> str: ...
        def _fail(self, at: ins.Instruction, message: str, kind: type[OciError] = ...) -> OciError: ...
        def stage_for(self, name: str, before: int | None = None) -> ins.Stage | None: ...
        def build(self, index: int) -> State: ...
        def lowers(self, state: State) -> list[str]: ...
        def _workspace(self) -> Workspace: ...
        def _fs_step(self, state: State, instruction: ins.Instruction, key: str, created_by: str,
                     work: Callable[[Overlay], None]) -> None: ...

    def _do_copy(self, state: State, instruction: ins.Copy) -> None:
        env = state.env()
        sources = [self._expand(s, env, instruction) for s in instruction.sources]
        dest = self._expand(instruction.dest, env, instruction)
        chown = self._expand(instruction.chown, env, instruction) if instruction.chown else None
        chmod = self._expand(instruction.chmod, env, instruction) if instruction.chmod else None
        if chmod is not None and not _CHMOD.match(chmod):
            raise self._fail(instruction, f"invalid --chmod={chmod}: expected an octal mode", InvalidInput)
        mode = int(chmod, 8) if chmod else None
        contents = [Heredoc(doc.name, self._expand_raw(doc.content, env) if doc.expand else doc.content)
                    for doc in instruction.contents]
        workdir = state.settings.get("WorkingDir") or "/"
        target = dest if dest.startswith("/") else posixpath.join(workdir, dest)
        as_dir = dest.endswith(("/", "/.")) or dest in (".", "..")
        if len(sources) + len(contents) > 1 and not as_dir:
            raise self._fail(instruction, "When using COPY with more than one source file, the destination must be "
                             "a directory and end with a /", InvalidInput)
        if instruction.add and (git := next((s for s in sources if _is_git(s)), None)):
            raise self._fail(instruction, f"{git}: ADD of a git repository is not supported by oci-build (clone it "
                             "into the context, then COPY it)", Unsupported)
        urls = [s for s in sources if instruction.add and _is_url(s)]
        local = [s for s in sources if s not in urls]
        root, source_key = self._source_root(state, instruction) if local else (None, "")
        hasher = hashlib.sha256()
        groups: list[tuple[Found, list[Item]]] = []
        if root is self.settings.context:  # the context's files are chosen now: their digest is part of the key
            groups = self._select(root, local)
            for match, items in groups:
                hasher.update(f"{match.rel}\n".encode("utf-8", "surrogateescape"))
                root.digest(items, hasher)
        for doc in contents:
            hasher.update(f"heredoc {doc.name}\n{doc.content}\n".encode("utf-8", "surrogateescape"))
        downloads = [self._download(instruction, url) for url in urls]
        for url, digest, _ in downloads:
            hasher.update(f"url {url} {digest}\n".encode())
        flags = ([f"--chown={chown}"] if chown else []) + ([f"--chmod={chmod}"] if chmod else []) + \
            ([f"--from={instruction.source_from}"] if instruction.source_from else [])
        text = " ".join([instruction.keyword, *flags, *sources, *(f"<<{doc.name}" for doc in contents), dest])
        key = step_key(state.key, text, source_key, hasher.hexdigest(), to_json(keyed_config(state)))

        def work(overlay: Overlay) -> None:
            chosen = groups if root is self.settings.context else self._select(root, local) if root else []
            with Tree(overlay.rootfs) as tree:
                owner = owner_of(overlay.rootfs, chown, numeric_group=True) if chown else None
                parents = Owner(*owner) if owner else Owner()
                as_directory = as_dir or tree.is_dir(target)
                if as_directory:
                    os.close(tree.makedirs(target, parents))
                for match, items in chosen:
                    self._write(tree, instruction, match, items, target, as_directory, owner, mode, parents,
                                keep_owner=root is not self.settings.context)
                for doc in contents:
                    data = doc.content.encode("utf-8", "surrogateescape")
                    entry = Entry(doc.name, tarfile.REGTYPE, mode=0o644, mtime=_now(self.settings.epoch),
                                  size=len(data), opener=functools.partial(io.BytesIO, data))
                    path = posixpath.join(target, doc.name) if as_directory else target
                    tree.put(entry, path, owner or (0, 0), mode, parents=parents)
                for url, _, downloaded in downloads:
                    st = os.stat(downloaded)
                    entry = Entry(_url_name(url), tarfile.REGTYPE, mode=0o600, mtime=int(st.st_mtime),
                                  size=st.st_size, opener=_file_opener(downloaded))
                    path = posixpath.join(target, entry.name) if as_directory else target
                    tree.put(entry, path, owner or (0, 0), mode, parents=parents)
                tree.finish()

        try:
            self._fs_step(state, instruction, key, text, work)
        finally:
            if isinstance(root, LazyRoot):
                root.close()

    def _expand_raw(self, text: str, env: dict[str, str]) -> str:
        return Lexer(self.program.dockerfile.escape, skip_process_quotes=True).process_word(text, env)

    def _source_root(self, state: State, instruction: ins.Copy) -> tuple[SourceRoot, str]:
        """Where the sources come from, and the part of the key that names it."""
        name = instruction.source_from
        if name is None:
            return self.settings.context, "context"
        name = self._expand(name, dict(self.global_args) | state.env(), instruction)
        stage = self.stage_for(name, state.index)
        if stage is not None:
            built = self.build(stage.index)
            return LazyRoot(self, built), "stage " + ",".join(str(d) for d in built.diff_ids)
        if self.program.stage(name) is not None and not name.isdigit():
            raise InvalidInput(f"--from={name}: a stage can only copy from a stage defined before it")

        image = base.resolve(name, state.platform, self.settings.store, self.settings.cache,
                             registry=self.settings.registry, pull=self.settings.pull,
                             info=self.settings.progress.note)
        if image is None:
            raise InvalidInput("--from=scratch: nothing to copy")
        source = State(copy.deepcopy(image.config), [oci_layer(layer) for layer in image.layers],
                       [self.settings.cache.tree(d) for d in image.diff_ids], "", state.platform)
        return LazyRoot(self, source), f"image {image.descriptor.digest}"

    def _select(self, root: SourceRoot, sources: list[str]) -> list[tuple[Found, list[Item]]]:
        groups = []
        for source in sources:
            matches = root.select(source)
            if not matches and not has_wildcard(source):
                raise NotFound(f"{source}: {root.why_missing(source)}")
            for match in matches:
                groups.append((match, root.items(match)))
        return groups

    def _write(self, tree: Tree, instruction: ins.Copy, match: Found, items: list[Item], target: str,
               as_directory: bool, owner: tuple[int, int] | None, mode: int | None, parents: Owner,
               keep_owner: bool) -> None:
        def owner_of(entry: Entry) -> tuple[int, int]:
            if owner is not None:
                return owner
            return (entry.uid, entry.gid) if keep_owner else (0, 0)

        if match.is_dir:
            os.close(tree.makedirs(target, parents))
            for item in items:
                path = posixpath.join(target, item.rel)
                link = posixpath.join(target, item.link_rel) if item.link_rel else None
                tree.put(item.entry, path, owner_of(item.entry), mode, link, parents)
            return
        if not items:
            return
        item = items[0]
        path = posixpath.join(target, posixpath.basename(match.rel) or item.rel) if as_directory else target
        if instruction.add and not keep_owner and archive.is_archive(match.host):
            os.close(tree.makedirs(target, parents))
            archive.unpack(tree, match.host, target, parents, self.settings.budget(), match.rel)
            return
        tree.put(item.entry, path, owner_of(item.entry), mode, None, parents)

    def _download(self, instruction: ins.Copy, url: str) -> tuple[str, str, str]:
        path = os.path.join(self._workspace().new_dir("download"), "file")
        digest = remote.download(url, path, instruction.checksum, self.settings.registry, self.settings.max_size)
        return url, digest, path


class LazyRoot(SourceRoot):
    """The root of another stage or image, mounted only when a step must read it."""

    def __init__(self, executor: CopySteps, state: State) -> None:
        self.executor, self.state = executor, state
        self.overlay: Overlay | None = None
        super().__init__("/", where="source stage or image")

    def _mount(self) -> None:
        if self.overlay is None:
            self.overlay = self.executor._workspace().mount(self.executor.lowers(self.state))
            self.path = self.overlay.rootfs

    def close(self) -> None:
        if self.overlay is not None:
            self.executor._workspace().discard(self.overlay)
            self.overlay = None

    def select(self, text: str) -> list[Found]:
        self._mount()
        return super().select(text)

    def items(self, found: Found) -> list[Item]:
        self._mount()
        return super().items(found)


def _now(epoch: int | None) -> int:
    return int(time.time()) if epoch is None else min(int(time.time()), epoch)


def _file_opener(path: str) -> Callable[[], BinaryIO]:
    def opener() -> BinaryIO:
        return open(path, "rb")

    return opener


def _is_git(text: str) -> bool:
    """A git repository as BuildKit's ADD recognises one: git://, git@, ssh://, or an http(s)
    URL whose path ends in .git (a #ref may follow)."""
    if text.startswith(("git://", "git@", "ssh://")):
        return True
    if not _is_url(text):
        return False
    from urllib.parse import urlsplit

    return urlsplit(text).path.rstrip("/").endswith(".git")


def _is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def _url_name(url: str) -> str:
    name = posixpath.basename(urlsplit(url).path.rstrip("/"))
    return name or "download"


