"""Reading a model file's archive, trusting nothing in it.

Only a regular file is opened; only the members the format defines are
read, each stored uncompressed, its size, ``.npy`` header and the JSON
header's shapes checked against one another before its data are read.
"""

from __future__ import annotations

import ast
import math
import os
import stat
import zipfile

import numpy as np

from ._model_format import _DESCR, _MAX_NPY_HEADER, _MEMBERS, MAX_HEADER_BYTES, _Malformed, _parse_header


def _open_regular(path, name: str):
    """Open ``path`` for reading if it is a regular file; never block on it."""
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FileNotFoundError(2, f"model file {name!r} does not exist", name) from None
    except IsADirectoryError:  # Windows cannot open directories
        raise _Malformed("it is a directory, not a regular file") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                    else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                    else "a socket" if stat.S_ISSOCK(mode) else "not a file")
            raise _Malformed(f"it is {kind}, not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_archive(f) -> tuple[dict, dict[str, np.ndarray]]:
    """The JSON header and the format's arrays, each checked before it is read."""
    size = os.fstat(f.fileno()).st_size
    if f.read(4) != b"PK\x03\x04":
        # Checked first: other files never reach the ZIP reader.
        raise _Malformed("not an .npz archive (a model file is a ZIP archive of .npy arrays)")
    f.seek(0)
    with zipfile.ZipFile(f) as zf:
        members: dict[str, zipfile.ZipInfo] = {}
        for info in zf.infolist():
            stem, dot, ext = info.filename.rpartition(".")
            if dot and ext == "npy" and stem in _MEMBERS:
                if stem in members:
                    raise _Malformed(f"member {info.filename} appears twice")
                members[stem] = info
        for stem, info in members.items():
            _check_stored(info, size)
        if "header" not in members:
            raise _Malformed("it has no header (header.npy)")
        blob = _read_member(zf, members["header"], kinds="u", itemsize=1,
                            shape=(None,), max_items=MAX_HEADER_BYTES)
        header = _parse_header(blob)
        k, d = header["n_clusters"], header["n_features"]
        arrays = {}
        # The shape each array must have: from the header, read first.
        specs = {
            "cluster_centers": ("f", np.dtype(header["dtype"]).itemsize, (k, d)),
            "cluster_sizes": ("iuf", None, (k,)),
            "mean": ("f", 8, (d,)),
            "scale": ("f", 8, (d,)),
            "seeds": ("biuf", None, (header.get("n_seeds"), d)),
        }
        for stem, (kinds, itemsize, shape) in specs.items():
            if stem in members:
                arrays[stem] = _read_member(zf, members[stem], kinds=kinds, itemsize=itemsize,
                                            shape=shape)
    return header, arrays


def _check_stored(info: zipfile.ZipInfo, size: int) -> None:
    if info.flag_bits & 0x1:
        raise _Malformed(f"member {info.filename} is encrypted")
    if info.compress_type != zipfile.ZIP_STORED:
        raise _Malformed(
            f"member {info.filename} is compressed (ZIP method {info.compress_type}); model "
            "files store their arrays uncompressed, as save_model writes them")
    if info.compress_size != info.file_size or info.header_offset + info.file_size > size:
        raise _Malformed(
            f"member {info.filename} declares {info.file_size} bytes (stored as "
            f"{info.compress_size}) at offset {info.header_offset}, but the file has "
            f"{size} bytes (truncated?)")


def _read_member(zf, info, *, kinds: str, itemsize: int | None, shape: tuple,
                 max_items: int | None = None) -> np.ndarray:
    """One ``.npy`` member: its header read and checked, then exactly its data.

    ``shape`` may hold None for a length the JSON header does not fix.
    """
    fn = info.filename
    known = None not in shape
    if known:
        # Before opening: the member cannot be smaller than the header's shapes
        # say, nor larger by more than a .npy header (the 4e12-element case).
        need = math.prod(shape) * (itemsize or 1)
        most = math.prod(shape) * (itemsize or 8) + 12 + _MAX_NPY_HEADER
        if not need <= info.file_size <= most:
            raise _Malformed(f"member {fn} has {info.file_size} bytes, but the header's shape "
                             f"{_shape(shape)} needs {need}" + (f" to {most}" if need != most else ""))
    if max_items is not None and info.file_size > max_items + 12 + _MAX_NPY_HEADER:
        raise _Malformed(f"member {fn} has {info.file_size} bytes, more than the "
                         f"{max_items} allowed")
    with zf.open(info) as fp:
        dtype, fortran, got, offset = _read_npy_header(fp, fn)
        if dtype.kind not in kinds or (itemsize is not None and dtype.itemsize != itemsize):
            raise _Malformed(f"{fn[:-4]} has dtype {dtype.name}, expected "
                             + _expected_dtype(kinds, itemsize))
        if len(got) != len(shape) or any(s is not None and s != g for s, g in zip(shape, got)):
            raise _Malformed(f"{fn[:-4]} has shape {got}, but the header says {_shape(shape)}")
        count = math.prod(got)
        if max_items is not None and count > max_items:
            raise _Malformed(f"{fn[:-4]} has {count} items, more than the {max_items} allowed")
        nbytes = count * dtype.itemsize
        if offset + nbytes != info.file_size:
            raise _Malformed(f"member {fn} has {info.file_size} bytes, but its .npy header "
                             f"({offset} bytes) declares {nbytes} bytes of data")
        buf = bytearray(nbytes)
        view = memoryview(buf)
        pos = 0
        while pos < nbytes:
            chunk = fp.read(min(1 << 20, nbytes - pos))
            if not chunk:
                raise _Malformed(f"member {fn} is truncated")
            view[pos:pos + len(chunk)] = chunk
            pos += len(chunk)
        if fp.read(1):  # reaching the end also verifies the CRC-32
            raise _Malformed(f"member {fn} has data past its array")
    a = np.frombuffer(buf, dtype=dtype).reshape(got, order="F" if fortran else "C")
    return a.astype(dtype.newbyteorder("="), copy=False)


def _read_npy_header(fp, fn: str):
    magic = fp.read(8)
    if len(magic) != 8 or magic[:6] != b"\x93NUMPY" or magic[6] not in (1, 2, 3):
        raise _Malformed(f"member {fn} is not a .npy array")
    width = 2 if magic[6] == 1 else 4
    raw = fp.read(width)
    if len(raw) != width:
        raise _Malformed(f"member {fn} is truncated")
    length = int.from_bytes(raw, "little")
    if length > _MAX_NPY_HEADER:
        raise _Malformed(f"member {fn} has a .npy header of {length} bytes")
    text = fp.read(length)
    if len(text) != length:
        raise _Malformed(f"member {fn} is truncated")
    try:
        meta = ast.literal_eval(text.decode("utf-8" if magic[6] == 3 else "latin1"))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, UnicodeDecodeError):
        raise _Malformed(f"member {fn} has an unreadable .npy header") from None
    if not (isinstance(meta, dict) and set(meta) == {"descr", "fortran_order", "shape"}
            and isinstance(meta["descr"], str) and _DESCR.fullmatch(meta["descr"])
            and isinstance(meta["fortran_order"], bool) and isinstance(meta["shape"], tuple)
            and all(type(n) is int and n >= 0 for n in meta["shape"])):
        raise _Malformed(f"member {fn} has an invalid .npy header {str(meta)[:200]!r} "
                         "(only plain numeric arrays are read)")
    return np.dtype(meta["descr"]), meta["fortran_order"], meta["shape"], 8 + width + length


def _shape(shape) -> str:
    return "(" + ", ".join("any" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _expected_dtype(kinds: str, itemsize: int | None) -> str:
    if kinds == "f" and itemsize is not None:
        return f"float{8 * itemsize}"
    return {"f": "a float type", "iu": "an integer type", "u": "uint8"}.get(kinds, "a numeric type")
