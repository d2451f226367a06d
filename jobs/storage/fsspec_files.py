"""Executors read files under Hadoop URIs (hdfs://, s3a://, gs://, …) from Python, through fsspec.

Spark's Hadoop FileSystem lives in the JVM; Python on the executors (GDAL reading a scene's
windows, idx files read by range) needs its own way in. fsspec names one implementation per
scheme (pyarrow's libhdfs client for ``hdfs://``, s3fs for ``s3a://``, gcsfs for ``gs://``…), each
taking its credentials from the node as Hadoop's would (instance roles, ``HADOOP_CONF_DIR``…).
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

from jobs.storage.base import Reader, StorageError
from jobs.storage.scratch import cached_copy


class FsspecReader(Reader):
    """Reads files by URI with the fsspec implementation of their scheme; picklable. fsspec keeps
    one file system object per process and host, made on first use."""

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol

    @classmethod
    def for_uri(cls, uri: str) -> FsspecReader:
        """A reader for ``uri``'s scheme; one line naming what is missing when none is usable."""
        import fsspec

        protocol = urlparse(uri).scheme
        try:
            fsspec.get_filesystem_class(protocol)
        except (ImportError, ValueError) as exc:
            raise StorageError(
                f"{protocol}:// files are read from Python through fsspec, which has no usable "
                f"implementation here ({str(exc).splitlines()[0]})"
            ) from None
        return cls(protocol)

    def read(self, uri: str) -> bytes:
        fs, path = _fs(uri)
        return bytes(fs.cat_file(path))

    def local_copy(self, uri: str) -> str:
        fs, remote = _fs(uri)
        return cached_copy(uri, os.path.basename(remote.rstrip("/")), lambda path: fs.get_file(remote, path))

    def opener(self) -> Any:
        """Opens a file as fsspec's seekable, buffered file: GDAL reads only the byte ranges a
        scene's header and a window need. A missing file is FileNotFoundError (GDAL probes for
        sidecar files)."""

        def open_file(uri: str, mode: str = "rb") -> Any:
            fs, path = _fs(uri)
            return fs.open(path, mode)

        return open_file


def _fs(uri: str) -> tuple[Any, str]:
    from fsspec.core import url_to_fs

    scheme, sep, rest = uri.partition(":")
    if sep and not rest.startswith("//"):  # Hadoop qualifies paths as scheme:/path; fsspec wants scheme:///path
        uri = f"{scheme}://{rest}"
    return url_to_fs(uri)
