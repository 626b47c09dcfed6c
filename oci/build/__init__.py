"""Making images without Docker: deterministic layers, image configs, commits into a layout.

* `entry.py`: one file of a layer (an `Entry`) and its deterministic tar encoding;
* `source.py`: entries from a directory, an overlayfs upper directory or a tarball, sorted;
* `diff.py`: entries for what a plain rootfs changed compared to an image (whiteouts for deletions);
* `compress.py`: deterministic gzip (parallel, pigz-style), zstd, or none;
* `layer.py`: a layer blob written into a layout, diff_id and digest in one pass;
* `config.py`: creating and editing an image config;
* `commit.py`: base image + layer + config -> manifest, tagged in a layout.
"""
