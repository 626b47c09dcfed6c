"""oci-unpack's library: image layers applied to a root filesystem, safely, or composed with overlayfs.

Modules, one concern each:

* `safepath`: paths resolved beneath a root directory fd (openat2, or an O_NOFOLLOW walk);
* `decompress`: a layer blob as its verified uncompressed tar stream (libdeflate, pigz, zlib, zstd);
* `apply`: one layer applied to a tree (entry types, whiteouts, owners, modes, xattrs);
* `options`: caps, id maps and per-layer results; `idmap`: `CONTAINER:HOST:SIZE` ranges;
* `rootfs`: all layers of an image onto an empty ROOTFS, removed again on failure;
* `overlay`: the content-addressed layer cache, overlay mounts and garbage collection;
* `layout`: an image layout whose documents are schema-validated once per content.
"""
