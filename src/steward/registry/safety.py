"""Keep pickles out of the registry.

Unpickling runs whatever code the file names, so Steward never loads a pickle it was handed.
``check_not_pickle`` recognises pickle and joblib files by extension and by content and refuses them
with a message that says how to convert the model to a safe format. ``load_trusted_pickle`` is the one
place that unpickles, for a user who explicitly trusts a file and wants it converted.
"""

from __future__ import annotations

import bz2
import lzma
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Final

from steward.errors import InvalidInput, UnsafeArtifact

PICKLE_SUFFIXES: Final = frozenset({".pkl", ".pickle", ".joblib", ".sav", ".dill"})
"""File extensions that mark pickle-based formats (pickle, joblib, dill)."""

_HEAD_BYTES: Final = 64 * 1024
_PICKLE_MAGIC: Final = 0x80
_PICKLE_PROTOCOLS: Final = range(2, 6)


def check_not_pickle(
    artifact: str | os.PathLike[str] | bytes | bytearray | memoryview, *, source: str
) -> None:
    """Refuse a pickle or joblib artifact, given as a path or as bytes.

    A path is refused for a pickle extension (``.pkl``, ``.pickle``, ``.joblib``, ``.sav``, ``.dill``,
    also before a compression suffix as in ``model.pkl.gz``). A file or bytes are refused when they
    start like a pickle of protocol 2 to 5 (``0x80`` then the protocol byte), or when they are a zlib,
    gzip, bzip2, xz or lzma stream whose decompressed start is such a pickle (joblib's ``compress=``).
    Protocol 0 and 1 pickles have no magic bytes; they are caught by extension only. A directory is
    checked by name only.

    Args:
        artifact: A path to a file or directory, or the artifact's bytes.
        source: What the artifact is, for the message (``"model"``, ``"artifact 'vocab'"``).

    Raises:
        UnsafeArtifact: If the artifact is a pickle or joblib file; the message says how to convert it.
    """
    if isinstance(artifact, bytes | bytearray | memoryview):
        head = bytes(artifact[:_HEAD_BYTES])
        if _looks_like_pickle(head):
            raise _refusal(source, "its bytes are a pickle stream")
        return
    path = Path(artifact)
    suffixes = {suffix.lower() for suffix in path.suffixes}
    if matched := sorted(suffixes & PICKLE_SUFFIXES):
        raise _refusal(source, f"{path.name} has the pickle extension {matched[0]}", path)
    if path.is_file():
        with path.open("rb") as file:
            head = file.read(_HEAD_BYTES)
        if _looks_like_pickle(head):
            raise _refusal(source, f"{path.name} holds a pickle stream", path)


def load_trusted_pickle(path: str | os.PathLike[str]) -> object:
    """Unpickle a file the user has explicitly trusted, so it can be saved in a safe format.

    **This runs code.** A pickle can execute any Python it likes while it loads; call this only for
    a file whose origin you trust, and only because the user asked for it with ``trust=True``. It is
    the only place in Steward that unpickles. Files written by ``joblib.dump`` (compressed or not)
    and plain pickles are both read with ``joblib.load``.

    Args:
        path: The pickle or joblib file.

    Returns:
        The unpickled object.

    Raises:
        InvalidInput: If ``path`` is not a file or cannot be unpickled.
    """
    import joblib  # installed with scikit-learn; imported here so the module stays light

    file = Path(path)
    if not file.is_file():
        raise InvalidInput(f"{file} is not a file", {"field": "model"})
    try:
        # Only reached with register_model(..., trust=True): the caller vouches for this file.
        loaded: object = joblib.load(file)  # trusted: the caller passed trust=True
    except Exception as exc:  # unpickling can fail in as many ways as there are classes
        raise InvalidInput(f"cannot unpickle {file}: {exc}", {"field": "model"}) from exc
    return loaded


def _looks_like_pickle(head: bytes) -> bool:
    if _is_pickle_start(head):
        return True
    for decompress in _decompressors(head):
        try:
            if _is_pickle_start(decompress(head)):
                return True
        except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
            continue
    return False


def _is_pickle_start(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == _PICKLE_MAGIC and head[1] in _PICKLE_PROTOCOLS


def _decompressors(head: bytes) -> list[Callable[[bytes], bytes]]:
    """Return decompressors for the stream formats ``head`` may start with (each yields a few bytes)."""
    found: list[Callable[[bytes], bytes]] = []
    if head[:2] == b"\x1f\x8b":  # gzip
        found.append(lambda data: zlib.decompressobj(wbits=31).decompress(data, 16))
    if len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:  # zlib header check
        found.append(lambda data: zlib.decompressobj().decompress(data, 16))
    if head[:3] == b"BZh":
        found.append(lambda data: bz2.BZ2Decompressor().decompress(data, max_length=16))
    if head[:6] == b"\xfd7zXZ\x00":
        found.append(lambda data: lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(data, max_length=16))
    if head[:1] == b"\x5d":  # the properties byte of the legacy .lzma ("alone") format joblib writes
        found.append(lambda data: lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(data, max_length=16))
    return found


def _refusal(source: str, reason: str, path: Path | None = None) -> UnsafeArtifact:
    message = (
        f"{source} is a pickle/joblib file ({reason}). Steward never loads pickles: unpickling runs "
        "arbitrary code. To register the model, load it in an environment where you trust the file and "
        "register the object itself: flavor 'sklearn' stores scikit-learn models with skops "
        "(skops.io.dump), and most models can be exported to ONNX (flavor 'onnx'). If you trust this "
        "file, steward.register_model(name, path, trust=True) unpickles it once, here, and stores the "
        "model in a safe format."
    )
    details: dict[str, str] = {"field": "model", "source": source, "reason": reason}
    if path is not None:
        details["path"] = str(path)
    return UnsafeArtifact(message, details)
