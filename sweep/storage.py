"""The sweep's own files beside Ray's results, on a local path or a storage URI (s3://, gs://, ...)."""

from __future__ import annotations

import shutil
from pathlib import Path

from pyarrow import fs


def is_uri(location: str) -> bool:
    """True for `scheme://...` (object stores, file://), False for a plain path."""
    return "://" in location


def _filesystem(location: str) -> tuple[fs.FileSystem, str]:
    return fs.FileSystem.from_uri(location if is_uri(location) else Path(location).resolve().as_uri())


def write_text(location: str, text: str) -> None:
    """Write a small file to a local path or a storage URI, creating its folder."""
    filesystem, path = _filesystem(location)
    filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with filesystem.open_output_stream(path) as stream:
        stream.write(text.encode())


def read_text(location: str) -> str | None:
    """The text of a small file at a local path or storage URI, or None if there is none."""
    filesystem, path = _filesystem(location)
    if filesystem.get_file_info(path).type != fs.FileType.File:
        return None
    with filesystem.open_input_stream(path) as stream:
        return stream.read().decode()


def exists(location: str) -> bool:
    """Whether a file or folder is at a local path or storage URI."""
    filesystem, path = _filesystem(location)
    return filesystem.get_file_info(path).type != fs.FileType.NotFound


def remove_folder(root: str, name: str) -> None:
    """Delete folder `root/name` and everything in it; `name` must be one path component, so nothing
    outside `root/name` can be removed."""
    if name in ("", ".", "..") or "/" in name or "\\" in name:
        raise ValueError(f"refusing to remove {name!r} under {root!r}: not a single folder name")
    location = f"{root.rstrip('/')}/{name}"
    filesystem, path = _filesystem(location)
    if filesystem.get_file_info(path).type == fs.FileType.NotFound:
        return
    if isinstance(filesystem, fs.LocalFileSystem):
        shutil.rmtree(path)
    else:
        filesystem.delete_dir(path)
