"""Azure Blob Storage and ADLS Gen2: URIs, credentials, retried clients, a storage root in a container.

URIs (all name a container, or an ADLS Gen2 file system, and a path in it):

* ``wasbs://<container>@<account>.blob.core.windows.net/<path>`` (the original sample's form;
  ``wasb://`` too)
* ``https://<account>.blob.core.windows.net/<container>/<path>``
* ``az://<container>/<path>``, the account coming from the credentials
* ADLS Gen2: ``abfss://<filesystem>@<account>.dfs.core.windows.net/<path>`` (``abfs://`` too) and
  ``https://<account>.dfs.core.windows.net/<filesystem>/<path>``. These are read and written
  through the Blob API of the same account (Data Lake Storage's multi-protocol access), so an
  ADLS root gets the same atomic model save, ``_SUCCESS`` manifests and append-only run index,
  from Spark's executors and from plain Python alike, without Hadoop's ABFS jars; folder
  entries that a hierarchical namespace lists as blobs are not files.

Credentials, per account (one run may use several): a SAS URL
(``https://<account>.blob.core.windows.net/<container>/<path>?<sas>``) carries its own; otherwise
the first found for that account wins: ``AZURE_STORAGE_CONNECTION_STRING``; ``AZURE_STORAGE_ACCOUNT``
with ``AZURE_STORAGE_KEY`` or ``AZURE_STORAGE_SAS_TOKEN`` (and ``AZURE_STORAGE_BLOB_ENDPOINT``
for an emulator); a secrets file named by ``AZURE_STORAGE_SECRETS`` (INI, section
``[azure]``: ``connection_string``, or ``account`` with ``key`` or ``sas_token``; like the
original's ``settings.cfg``, keep it outside the repository). With none of these for the
account, an Entra ID token from azure-identity's ``DefaultAzureCredential`` (managed identity,
workload identity, a service principal in ``AZURE_CLIENT_*``, ``az login``), obtained by each
executor on its own node. Which kind was used is said at start (:attr:`BlobCredentials.kind`);
secrets never are: they are left out of reprs and error messages, and never written into run
records (:mod:`jobs.runtime.redact` strips SAS signatures wherever a URI is shown or recorded).

Clients retry transient failures (timeouts, connection errors, 5xx, throttling) with
exponential backoff for about half a minute before a job gives up.
"""

from __future__ import annotations

import configparser
import io
import logging
import os
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from jobs.runtime.redact import redact
from jobs.storage.base import HIDDEN, SUCCESS, Reader, Storage, StorageError
from jobs.storage.models import ModelCommit
from jobs.storage.scratch import cached_copy, temp_dir

_HOST = re.compile(r"^(?P<account>[a-z0-9]+)\.blob\.core\.windows\.net$")
_DFS_HOST = re.compile(r"^(?P<account>[a-z0-9]+)\.dfs\.core\.windows\.net$")
SCHEMES = ("wasbs", "wasb", "az", "abfss", "abfs")
ENTRA_ID = "Entra ID (DefaultAzureCredential)"
RETRY = {"retry_total": 6, "initial_backoff": 1.0, "increment_base": 2}  # ~1, 3, 5, 9, 17 s waits


@dataclass(frozen=True)
class BlobPath:
    account: str | None  # None for az://, which takes the credentials' account
    container: str
    path: str  # no leading or trailing slash; "" for the container's root
    sas_token: str | None = field(default=None, repr=False, compare=False)  # from an https SAS URL
    dfs: bool = False  # named as ADLS Gen2 (abfss:// or https://…dfs…): shown back in that form


def is_blob_uri(uri: str) -> bool:
    parsed = urlparse(uri)
    host = parsed.netloc.rpartition("@")[2]
    if parsed.scheme in ("abfss", "abfs"):
        return bool(_DFS_HOST.match(host))
    https = parsed.scheme == "https" and bool(_HOST.match(host) or _DFS_HOST.match(host))
    return parsed.scheme in SCHEMES or https


def parse(uri: str) -> BlobPath:
    """Splits a blob URI of any of the three forms; raises StorageError for anything else.

    In ``wasbs://`` and ``az://`` forms the blob name is taken verbatim, so names holding ``#``,
    ``?``, ``%``, spaces or any unicode round-trip (these are the forms this project writes).
    The ``https://`` form is a URL: its path is percent-decoded, and its query, if any, is a
    SAS token that grants access (never printed: see :mod:`jobs.runtime.redact`).
    """
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise StorageError(f"{redact(uri)!r} is not an Azure Blob URI ({FORMS})")
    netloc, _, path = rest.partition("/")
    path = path.strip("/")
    if scheme in ("wasbs", "wasb", "abfss", "abfs"):
        dfs = scheme.startswith("abfs")
        container, _, host = netloc.partition("@")
        m = (_DFS_HOST if dfs else _HOST).match(host)
        if not container or m is None:
            kind = "dfs" if dfs else "blob"
            raise StorageError(
                f"{redact(uri)!r}: expected {scheme}://<container>@<account>.{kind}.core.windows.net/<path>"
            )
        return BlobPath(m["account"], container, path, dfs=dfs)
    if scheme == "https":
        parsed = urlparse(uri)
        m = _HOST.match(parsed.netloc) or _DFS_HOST.match(parsed.netloc)
        container, _, name = unquote(parsed.path).strip("/").partition("/")
        if m is None or not container:
            raise StorageError(f"{redact(uri)!r}: expected https://<account>.blob.core.windows.net/<container>/<path>")
        dfs = bool(_DFS_HOST.match(parsed.netloc))
        return BlobPath(m["account"], container, name.strip("/"), sas_token=parsed.query or None, dfs=dfs)
    if scheme == "az" and netloc:
        return BlobPath(None, netloc, path)
    raise StorageError(f"{redact(uri)!r} is not an Azure Blob URI ({FORMS})")


FORMS = "wasbs://, abfss://, https://…blob|dfs.core.windows.net, az://"


@dataclass(frozen=True)
class BlobCredentials:
    """How to reach one storage account. Picklable, so executors build their own clients (with
    ``token``, each executor asks its own node's identity for a token)."""

    account: str
    endpoint: str
    key: str | None = field(default=None, repr=False)
    sas_token: str | None = field(default=None, repr=False)
    connection_string: str | None = field(default=None, repr=False)
    token: bool = False  # an Entra ID token from DefaultAzureCredential

    @property
    def kind(self) -> str:
        """Which credential this is, for logs and records (never the secret itself)."""
        if self.token:
            return ENTRA_ID
        if self.connection_string:
            return "connection string"
        return "account key" if self.key else "SAS token" if self.sas_token else "anonymous"

    def service(self) -> Any:
        """A BlobServiceClient with retries, one per process and account."""
        cached = _CLIENTS.get(self)
        if cached is None:
            from azure.storage.blob import BlobServiceClient, ExponentialRetry

            retry = ExponentialRetry(**RETRY)
            if self.connection_string:
                cached = BlobServiceClient.from_connection_string(self.connection_string, retry_policy=retry)
            else:
                credential: Any = self.sas_token
                if self.key:
                    credential = {"account_name": self.account, "account_key": self.key}
                elif self.token:
                    credential = _token_credential()
                cached = BlobServiceClient(self.endpoint, credential=credential, retry_policy=retry)
            _CLIENTS[self] = cached
        return cached

    def container(self, name: str) -> Any:
        return self.service().get_container_client(name)

    def token_source(self) -> str | None:
        """The DefaultAzureCredential member that gave this process its token (after a request)."""
        if not self.token:
            return None
        chosen = getattr(_TOKEN_CREDENTIAL.get("default"), "_successful_credential", None)
        return type(chosen).__name__ if chosen is not None else None


_CLIENTS: dict[BlobCredentials, Any] = {}
_TOKEN_CREDENTIAL: dict[str, Any] = {}


def _token_credential() -> Any:
    """One DefaultAzureCredential per process: it caches and refreshes its tokens."""
    if "default" not in _TOKEN_CREDENTIAL:
        try:
            from azure.identity import DefaultAzureCredential
        except ImportError:
            raise StorageError("Entra ID sign-in needs azure-identity: pip install azure-identity") from None
        # Its failure is a multi-line report per attempt; ours is one line (see describe).
        logging.getLogger("azure.identity").setLevel(logging.CRITICAL)
        _TOKEN_CREDENTIAL["default"] = DefaultAzureCredential()
    return _TOKEN_CREDENTIAL["default"]


STORAGE_SCOPE = "https://storage.azure.com/.default"


def _from_connection_string(text: str) -> BlobCredentials:
    parts = dict(p.split("=", 1) for p in text.split(";") if "=" in p)
    account = parts.get("AccountName")
    if not account:
        raise StorageError("the Azure connection string has no AccountName")
    endpoint = parts.get("BlobEndpoint") or (
        f"{parts.get('DefaultEndpointsProtocol', 'https')}://{account}.blob."
        f"{parts.get('EndpointSuffix', 'core.windows.net')}"
    )
    return BlobCredentials(account, endpoint.rstrip("/"), connection_string=text)


def credentials(account: str | None, sas_token: str | None = None) -> BlobCredentials:
    """The credentials for ``account`` (or the configured one); see the module doc for sources.

    ``sas_token`` (from a SAS URL) wins over the environment for its account. An emulator's
    endpoint (``AZURE_STORAGE_BLOB_ENDPOINT``, or a connection string's) is used for the
    account it names, whatever the credential; other accounts are Azure's.
    """
    env = os.environ
    found: BlobCredentials | None = None
    if env.get("AZURE_STORAGE_CONNECTION_STRING"):
        found = _from_connection_string(env["AZURE_STORAGE_CONNECTION_STRING"])
    elif env.get("AZURE_STORAGE_ACCOUNT"):
        name = env["AZURE_STORAGE_ACCOUNT"]
        key, sas = env.get("AZURE_STORAGE_KEY"), env.get("AZURE_STORAGE_SAS_TOKEN")
        endpoint = env.get("AZURE_STORAGE_BLOB_ENDPOINT", f"https://{name}.blob.core.windows.net").rstrip("/")
        # An account named with no key or SAS signs in with Entra ID (never anonymously).
        found = BlobCredentials(name, endpoint, key=key, sas_token=sas, token=not (key or sas))
    elif env.get("AZURE_STORAGE_SECRETS"):
        found = _from_file(env["AZURE_STORAGE_SECRETS"])
    account = account or (found.account if found else None)
    if account is None:
        raise StorageError(
            "az:// names no storage account: set AZURE_STORAGE_ACCOUNT (Entra ID sign-in), "
            "AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_SECRETS, or use a wasbs:// or abfss:// URI"
        )
    same = found is not None and found.account == account
    endpoint = found.endpoint if same and found else f"https://{account}.blob.core.windows.net"
    if sas_token:
        return BlobCredentials(account, endpoint, sas_token=sas_token)
    if same and found:
        return found
    return BlobCredentials(account, endpoint, token=True)


def _from_file(path: str) -> BlobCredentials:
    cfg = configparser.ConfigParser()
    if not cfg.read(path) or "azure" not in cfg:
        raise StorageError(f"secrets file {path}: no [azure] section")
    sec = cfg["azure"]
    if sec.get("connection_string"):
        return _from_connection_string(sec["connection_string"])
    if not sec.get("account"):
        raise StorageError(f"secrets file {path}: [azure] needs connection_string, or account with key or sas_token")
    name = sec["account"]
    return BlobCredentials(
        name,
        sec.get("blob_endpoint", f"https://{name}.blob.core.windows.net").rstrip("/"),
        key=sec.get("key"),
        sas_token=sec.get("sas_token"),
    )


def describe(exc: Exception, what: str) -> StorageError:
    """A one-line StorageError for an Azure SDK error, naming no secret (SDK texts may hold URLs)."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

    if isinstance(exc, ResourceNotFoundError):
        code = getattr(exc, "error_code", None) or "not found"
        return StorageError(f"{what}: {code}")
    if isinstance(exc, ClientAuthenticationError) and getattr(exc, "response", None) is None:
        # No storage response: the credential itself could get no token. Say where one comes from.
        return StorageError(
            f"{what}: no Entra ID token (DefaultAzureCredential found no managed identity, workload identity, "
            "AZURE_CLIENT_* service principal or az login); or give an account key, SAS or connection string"
        )
    if isinstance(exc, ClientAuthenticationError) or getattr(exc, "status_code", None) in (401, 403):
        return StorageError(f"{what}: access denied (check the account key, SAS token, or the identity's role)")
    if isinstance(exc, HttpResponseError):
        return StorageError(f"{what}: HTTP {exc.status_code} {getattr(exc, 'error_code', '') or ''}".rstrip())
    return StorageError(f"{what}: {type(exc).__name__}")


class BlobReader(Reader):
    """Reads blobs by URI on executors, one retried client per process and account."""

    def __init__(self, creds: BlobCredentials) -> None:
        self.creds = creds

    def read(self, uri: str) -> bytes:
        loc = parse(uri)
        try:
            return self.creds.container(loc.container).download_blob(loc.path).readall()
        except Exception as exc:
            raise describe(exc, f"read {uri}") from None

    def local_copy(self, uri: str) -> str:
        """Downloads the blob once per process into a temp folder (idx files read by range)."""
        loc = parse(uri)

        def download(path: str) -> None:
            with open(path, "wb") as f:
                self.creds.container(loc.container).download_blob(loc.path).readinto(f)

        return cached_copy(uri, os.path.basename(loc.path), download)

    def opener(self) -> Any:
        """Opens a blob as a seekable file that fetches byte ranges (GDAL reads a COG's header
        and the tiles a window needs, never the whole blob)."""
        creds = self.creds

        def open_blob(uri: str, mode: str = "rb") -> io.BufferedReader:
            loc = parse(uri)
            client = creds.container(loc.container).get_blob_client(loc.path)
            try:
                size = client.get_blob_properties().size
            except Exception as exc:
                from azure.core.exceptions import ResourceNotFoundError

                if isinstance(exc, ResourceNotFoundError):  # GDAL probes for sidecar files
                    raise FileNotFoundError(uri) from None
                raise describe(exc, f"open {uri}") from None
            return io.BufferedReader(_RangedBlob(client, size), buffer_size=1 << 18)

        return open_blob


@dataclass(frozen=True)
class BlobWriter:
    """Writes whole blobs below a root from executors (one upload: readers see all or nothing)."""

    creds: BlobCredentials
    container: str
    prefix: str

    def write_bytes(self, data: bytes, *parts: str) -> str:
        name = "/".join(p for p in (self.prefix, *parts) if p)
        try:
            self.creds.container(self.container).upload_blob(name, data, overwrite=True)
        except Exception as exc:
            raise describe(exc, f"write {name}") from None
        return name


class BlobLease:
    """A renewable lease on one blob: while it is renewed, no one else deletes or leases it."""

    def __init__(self, client: Any) -> None:
        self.client, self.held = client, None

    def acquire(self, seconds: int) -> bool:
        """Takes the lease; False if another holder's lease is active (or the blob is gone)."""
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        try:
            self.held = self.client.acquire_lease(lease_duration=seconds)
        except ResourceNotFoundError:
            return False
        except HttpResponseError as exc:
            if exc.status_code == 409:
                return False
            raise describe(exc, f"lease {self.client.blob_name}") from None
        return True

    def renew(self) -> bool:
        """False when the lease was lost (it lapsed and was taken, or broken)."""
        from azure.core.exceptions import HttpResponseError

        if self.held is None:
            return False
        try:
            self.held.renew()
        except HttpResponseError:
            return False
        return True

    def delete(self) -> None:
        """Deletes the blob under the lease held."""
        self.client.delete_blob(lease=self.held)
        self.held = None


class _RangedBlob(io.RawIOBase):
    """A read-only, seekable blob whose reads are ranged GETs."""

    def __init__(self, client: Any, size: int) -> None:
        super().__init__()
        self.client, self.size, self.pos = client, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.size - self.pos)
        if n <= 0:
            return 0
        data = self.client.download_blob(offset=self.pos, length=n).readall()
        buffer[: len(data)] = data
        self.pos += len(data)
        return len(data)


class BlobStorage(Storage):
    """A storage root in a blob container: ``<container>/<path>/…``."""

    LIST_PAGE = 5000  # names per listing request (the service's maximum)

    def __init__(self, root: str) -> None:
        loc = parse(root)
        self.creds = credentials(loc.account, loc.sas_token)
        self.container_name = loc.container
        self.prefix = loc.path
        self.dfs = loc.dfs
        self.client = self.creds.container(loc.container)

    def _name(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def uri(self, *parts: str) -> str:
        if self.dfs:
            return f"abfss://{self.container_name}@{self.creds.account}.dfs.core.windows.net/{self._name(*parts)}"
        return f"wasbs://{self.container_name}@{self.creds.account}.blob.core.windows.net/{self._name(*parts)}"

    def credential(self) -> str:
        source = self.creds.token_source()
        return f"{self.creds.kind}: {source}" if source else self.creds.kind

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from azure.core.exceptions import ResourceExistsError

        try:
            return fn(*args, **kwargs)
        except (StorageError, ResourceExistsError):
            raise
        except Exception as exc:
            raise describe(exc, what) from None

    def check(self) -> None:
        """Fails early, with one line, when the container is missing or the credentials are wrong.

        One listing request: a container SAS may list but not read the container's properties."""
        from azure.core.exceptions import ResourceNotFoundError

        if self.creds.token:  # a token first: without one, every request would be retried in vain
            try:
                _token_credential().get_token(STORAGE_SCOPE)
            except Exception as exc:
                raise describe(exc, f"account {self.creds.account}") from None
        try:
            next(self.client.list_blobs(results_per_page=1).by_page(), None)
        except ResourceNotFoundError:
            raise StorageError(f"container {self.container_name} not found in account {self.creds.account}") from None
        except Exception as exc:
            raise describe(exc, f"container {self.container_name}") from None

    def exists(self, *parts: str) -> bool:
        return bool(self._call(f"exists {self.uri(*parts)}", self.client.get_blob_client(self._name(*parts)).exists))

    def read_bytes(self, *parts: str) -> bytes:
        blob = self.client.get_blob_client(self._name(*parts))
        return bytes(self._call(f"read {self.uri(*parts)}", lambda: blob.download_blob().readall()))

    def write_bytes(self, data: bytes, *parts: str) -> str:
        # One Put Blob (or a block list committed at the end): readers see all or nothing.
        blob = self.client.get_blob_client(self._name(*parts))
        self._call(f"write {self.uri(*parts)}", blob.upload_blob, data, overwrite=True)
        return self.uri(*parts)

    def head(self, n: int, *parts: str) -> bytes:
        blob = self.client.get_blob_client(self._name(*parts))
        size = self.size(*parts)
        return bytes(self._call(f"read {self.uri(*parts)}", lambda: blob.download_blob(0, min(n, size)).readall()))

    def size(self, *parts: str) -> int:
        blob = self.client.get_blob_client(self._name(*parts))
        return int(self._call(f"read {self.uri(*parts)}", blob.get_blob_properties).size)

    def create_exclusive(self, data: bytes, *parts: str) -> bool:
        from azure.core.exceptions import ResourceExistsError

        blob = self.client.get_blob_client(self._name(*parts))
        try:
            self._call(f"create {self.uri(*parts)}", blob.upload_blob, data, overwrite=False)
        except ResourceExistsError:
            return False
        return True

    def delete(self, *parts: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        blob = self.client.get_blob_client(self._name(*parts))
        try:
            blob.delete_blob()
        except ResourceNotFoundError:
            pass

    def append_line(self, line: str, *parts: str) -> None:
        """An append blob: each Append Block is atomic, so concurrent runs' lines stay whole."""
        blob = self.client.get_blob_client(self._name(*parts))

        def append() -> None:
            if not blob.exists():
                from azure.core.exceptions import ResourceExistsError

                try:
                    blob.create_append_blob(if_none_match="*")
                except ResourceExistsError:
                    pass  # another run created it first
            blob.append_block((line.rstrip("\n") + "\n").encode())

        self._call(f"append {self.uri(*parts)}", append)

    def iter_files(self, *parts: str, skipped: Counter[str] | None = None) -> Iterator[str]:
        self.check()
        name = self._name(*parts)
        prefix = f"{name}/" if name else ""
        # Page by page, so a listing is never held whole.
        listing = self.client.list_blobs(name_starts_with=prefix, results_per_page=self.LIST_PAGE, include=["metadata"])
        pages = listing.by_page()
        found = False
        while (page := self._call(f"list {self.uri(*parts)}", lambda: next(pages, None))) is not None:
            for blob in page:  # a fetched page: iterating it makes no request
                if (blob.metadata or {}).get("hdi_isfolder") == "true":
                    continue  # a hierarchical namespace's folder, listed as an empty blob
                rel = blob.name[len(prefix) :]
                if not any(p.startswith(HIDDEN) for p in rel.split("/")):
                    found = True
                    yield rel
                elif skipped is not None:
                    skipped["hidden"] += 1
        if not found:
            raise StorageError(f"folder not found or empty: {self.uri(*parts)}")

    def list_folders(self, *parts: str) -> list[str]:
        name = self._name(*parts)
        prefix = f"{name}/" if name else ""
        listed = self._call(f"list {self.uri(*parts)}", lambda: list(self.client.walk_blobs(prefix, delimiter="/")))
        folders = [b.name[len(prefix) :].rstrip("/") for b in listed if b.name.endswith("/")]
        return sorted(f for f in folders if f and not f.startswith(HIDDEN))

    def reader(self) -> Reader:
        return BlobReader(self.creds)

    def lease(self, *parts: str) -> BlobLease:
        return BlobLease(self.client.get_blob_client(self._name(*parts)))

    def writer(self) -> BlobWriter:
        return BlobWriter(self.creds, self.container_name, self.prefix)

    def write_table(
        self, df: DataFrame, *parts: str, fmt: str = "parquet", before_commit: Callable[[], None] | None = None
    ) -> str:
        """Each task uploads its partition as ``part-<partition>.<fmt>`` (a retried task writes
        the same name again, so nothing is duplicated); ``_SUCCESS`` lists the parts, last."""
        creds, container, base = self.creds, self.container_name, self._name(*parts)
        schema = df.schema

        def upload(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            import pyarrow as pa
            import pyarrow.parquet as pq
            from pyspark import TaskContext

            frames = list(batches)
            table = pa.Table.from_pandas(
                pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=schema.names),
                schema=_arrow_schema(schema),
                preserve_index=False,
            )
            name = f"{base}/part-{TaskContext.get().partitionId():05d}.{fmt}"
            sink = pa.BufferOutputStream()
            if fmt == "csv":
                import pyarrow.csv as pcsv

                pcsv.write_csv(table, sink)
            else:
                pq.write_table(table, sink)
            creds.container(container).upload_blob(name, sink.getvalue().to_pybytes(), overwrite=True)
            yield pd.DataFrame({"part": [name.rsplit("/", 1)[1]], "rows": [table.num_rows]})

        written = df.mapInPandas(upload, "part string, rows long").collect()  # one row per partition
        manifest = {
            "parts": sorted(r["part"] for r in written),
            "rows": sum(int(r["rows"]) for r in written),
            "schema": schema.jsonValue(),
        }
        if before_commit is not None:
            before_commit()
        self.write_json(manifest, *parts, SUCCESS)
        return self.uri(*parts)

    def _manifest(self, *parts: str) -> dict[str, Any]:
        if not self.exists(*parts, SUCCESS):
            raise StorageError(f"no complete table at {self.uri(*parts)}")
        return dict(self.read_json(*parts, SUCCESS))

    def read_table(self, spark: SparkSession, *parts: str) -> DataFrame:
        from pyspark.sql.types import StructType

        manifest = self._manifest(*parts)
        schema = StructType.fromJson(manifest["schema"])
        reader, uris = self.reader(), [self.uri(*parts, p) for p in manifest["parts"]]
        names = spark.createDataFrame([(u,) for u in uris], "uri string").repartition(max(1, len(uris)))

        def download(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            import pyarrow.parquet as pq

            for batch in batches:
                for uri in batch["uri"]:
                    yield pq.read_table(io.BytesIO(reader.read(uri))).to_pandas()

        return names.mapInPandas(download, schema)

    def read_frame(self, *parts: str) -> pd.DataFrame:
        import pyarrow.parquet as pq

        manifest = self._manifest(*parts)
        frames = [pq.read_table(io.BytesIO(self.read_bytes(*parts, p))).to_pandas() for p in manifest["parts"]]
        return pd.concat(frames, ignore_index=True)

    def model_commit(self, *parts: str) -> ModelCommit:
        return _BlobCommit(self, parts)

    def model_folder(self, *parts: str) -> tuple[str, ...]:
        return (*parts, self._version(*parts)["version"])

    def loadable(self, *folder: str) -> str:
        """A local copy of the version folder's files, as ``_MODEL`` lists them."""
        files = self._version(*folder[:-1])["files"]
        local = os.path.join(temp_dir("model-"), "model")
        for f in files:
            target = Path(local) / f
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.read_bytes(*folder, *f.split("/")))
        return local

    def _version(self, *parts: str) -> dict[str, Any]:
        if not self.exists(*parts, MODEL_MARKER):
            raise StorageError(f"no saved model at {self.uri(*parts)}")
        return dict(self.read_json(*parts, MODEL_MARKER))


class _BlobCommit(ModelCommit):
    """Model and card uploaded into a new version folder, then ``_MODEL`` pointed at it (one Put
    Blob): a reader loads the old model or the new one, never a mix. Old and abandoned versions
    stay until deleted, never in the way."""

    def __init__(self, storage: BlobStorage, parts: tuple[str, ...]) -> None:
        self.storage, self.parts = storage, parts
        self.staging = os.path.join(temp_dir("model-"), "model")
        self.previous: bytes | None = None

    def put(self, name: str, data: bytes) -> None:
        Path(self.staging, name).write_bytes(data)

    def publish(self) -> None:
        local, storage, parts = Path(self.staging), self.storage, self.parts
        files = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
        version = f"v-{uuid.uuid4().hex[:12]}"
        for f in files:
            storage.write_bytes((local / f).read_bytes(), *parts, version, *f.split("/"))
        self.previous = storage.read_bytes(*parts, MODEL_MARKER) if storage.exists(*parts, MODEL_MARKER) else None
        storage.write_json({"version": version, "files": files}, *parts, MODEL_MARKER)

    def rollback(self) -> None:
        if self.previous is None:
            self.storage.delete(*self.parts, MODEL_MARKER)
        else:
            self.storage.write_bytes(self.previous, *self.parts, MODEL_MARKER)


MODEL_MARKER = "_MODEL"


def _arrow_schema(schema: Any) -> Any:
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(schema)
