"""libdeflate (Debian's libdeflate0) through ctypes: a whole gzip member inflated in one call,
when the system has the library. A compression library, not the kernel: it stays with the
unpacker, apart from oci/linux's kernel seam."""

from __future__ import annotations

import ctypes

_LOADED: list = []


def _library() -> ctypes.CDLL | None:
    """libdeflate through ctypes, when the system has it (Debian libdeflate0)."""
    if not _LOADED:
        try:
            lib = ctypes.CDLL("libdeflate.so.0")
            lib.libdeflate_alloc_decompressor.restype = ctypes.c_void_p
            lib.libdeflate_free_decompressor.argtypes = [ctypes.c_void_p]
            size_p = ctypes.POINTER(ctypes.c_size_t)
            lib.libdeflate_gzip_decompress_ex.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                                                          ctypes.c_void_p, ctypes.c_size_t, size_p, size_p]
            _LOADED.append(lib)
        except (OSError, AttributeError):
            _LOADED.append(None)
    return _LOADED[0]


def inflate_once(data: bytearray, cap: int) -> bytearray | None:
    """The single gzip member in `data` inflated (None if it is not exactly one member within `cap`)."""
    lib = _library()
    if lib is None or len(data) < 18:
        return None
    size = int.from_bytes(data[-4:], "little")  # ISIZE: the size modulo 2**32
    if size > cap:
        return None
    out = bytearray(size)
    used_in, used_out = ctypes.c_size_t(), ctypes.c_size_t()
    source = (ctypes.c_char * len(data)).from_buffer(data)
    target = (ctypes.c_char * max(size, 1)).from_buffer(out) if size else ctypes.create_string_buffer(1)
    decompressor = lib.libdeflate_alloc_decompressor()
    try:
        result = lib.libdeflate_gzip_decompress_ex(decompressor, source, len(data), target, size,
                                                   ctypes.byref(used_in), ctypes.byref(used_out))
    finally:
        lib.libdeflate_free_decompressor(decompressor)
        del source, target
    if result != 0 or used_in.value != len(data) or used_out.value != size:
        return None
    return out


def available() -> bool:
    """Whether the library loads here."""
    return _library() is not None
