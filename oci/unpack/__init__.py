"""oci-unpack's library: image layers applied to a root filesystem, safely, or composed with overlayfs.

Modules: `safepath` (paths resolved beneath a root directory fd), `idmap` (uid/gid shifting),
`decompress` (layer blobs as verified tar streams), `apply` (one layer onto a tree),
`overlay` (the content-addressed layer cache and overlay mounts), `image` (a whole image).
"""
