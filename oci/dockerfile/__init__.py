"""Building images from a Dockerfile (Containerfile) into an OCI layout, without a daemon.

The language, as Docker's BuildKit frontend reads it:

* `parser`: directives (`# escape=`), comments, line continuations, here-documents, and
  instruction lines with their `--flags`;
* `words`: Docker's shell-like word processing: quotes, escapes and `$VAR`, `${VAR:-x}`
  expansion, word splitting;
* `instructions`: each instruction's arguments (JSON and shell forms), stages and global ARGs;
* `ignore`: `.dockerignore` patterns.

Building:

* `context`: the build context: sources selected by globs and the ignore file, their content
  digests (remembered by stat so an unchanged rebuild reads no file), files of the context
  opened with symlinks resolved inside it; `stdin` the context read as a tar on stdin;
* `tree`: writing files into a root filesystem, every path resolved inside it;
* `mounts`: a stage's layers stacked with overlayfs (a private mount namespace);
* `runstep`: a RUN step in a real container through oci-run; `lifetime` how that container
  dies with a SIGKILLed build and what the next build reaps;
* `cache`: step records (the layer a step made, by cache key), stage results, base images;
* `base`: FROM: an earlier stage, `scratch`, `oci:LAYOUT[:TAG]` or a registry reference;
* `state`: a stage's image in the making, the build's settings, cache keys;
* `executor`: the stages' instructions, step by step, with the cache; `copystep` its COPY
  and ADD, `archive` the archives ADD unpacks, `remote` the URLs ADD fetches, `squash` the
  `--squash` layer;
* `progress`: Docker's `STEP n/N` lines on stderr;
* `build`: the entry point, `build(BuildOptions) -> BuildResult`.
"""
