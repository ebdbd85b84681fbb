"""A minimal S3 client on the standard library: the Redis agent uploads and downloads its RDB
snapshots with it (boto3 is not a dependency, and the agent needs six calls).

Requests are signed with AWS Signature Version 4 by hand. The signer is a set of pure functions
(canonical request, string to sign, signing key, Authorization header) so that the unit tests
can check them against AWS's published examples; the HTTP part opens one connection per request
(snapshots are few and large: nothing to gain from pooling) and retries what is safe to retry."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import logging
import ssl
import time
import urllib.parse
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, TypeVar

from kuberds.contract.settings import ObjectStoreTarget

log = logging.getLogger("kuberds.agent")

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
BLOCK = 1 << 20  # what moves between the socket and a file at a time
ATTEMPTS = 3
BACKOFF_SECONDS = 0.5  # doubled after every failed attempt
PAGE = 1000  # ListObjectsV2's own maximum
ERROR_BODY_LIMIT = 64 << 10

T = TypeVar("T")


# -- the signer (pure)


def uri_encode(text: str, keep_slash: bool = False) -> str:
    """SigV4's encoding: every byte of the UTF-8 form but A-Z a-z 0-9 - _ . ~ as %XX (upper
    case hex). An object's path keeps its `/` (S3 signs the path as sent, unnormalised)."""
    return urllib.parse.quote(text, safe="/" if keep_slash else "")


def canonical_query(params: Mapping[str, str]) -> str:
    """Sorted by encoded name; the same string is sent, so what is signed is what arrives."""
    pairs = sorted((uri_encode(name), uri_encode(value)) for name, value in params.items())
    return "&".join(f"{name}={value}" for name, value in pairs)


def canonical_request(method: str, path: str, query: str, headers: Mapping[str, str],
                      payload_hash: str) -> tuple[str, str]:  # fmt: skip
    """The canonical request and its signed-headers list: every header given is signed
    (names lower case, values trimmed, inner runs of spaces squeezed)."""
    canonical = sorted((name.lower(), " ".join(str(value).split())) for name, value in headers.items())
    signed = ";".join(name for name, _ in canonical)
    lines = [method, path, query, *(f"{name}:{value}" for name, value in canonical), "", signed, payload_hash]
    return "\n".join(lines), signed


def credential_scope(day: str, region: str, service: str = "s3") -> str:
    return f"{day}/{region}/{service}/aws4_request"


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    return "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])


def signing_key(secret_key: str, day: str, region: str, service: str = "s3") -> bytes:
    key = ("AWS4" + secret_key).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def authorization(method: str, path: str, query: str, headers: Mapping[str, str], payload_hash: str,
                  access_key: str, secret_key: str, region: str, service: str = "s3") -> str:  # fmt: skip
    """The Authorization header for a request whose headers (host and x-amz-date among them)
    are all to be signed; `path` and `query` as sent (already encoded)."""
    amz_date = next(value for name, value in headers.items() if name.lower() == "x-amz-date")
    day = amz_date[:8]
    canonical, signed = canonical_request(method, path, query, headers, payload_hash)
    scope = credential_scope(day, region, service)
    to_sign = string_to_sign(amz_date, scope, canonical)
    signature = hmac.new(signing_key(secret_key, day, region, service), to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"


def amz_date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


# -- where a bucket and its objects are (pure)


@dataclass(frozen=True)
class Address:
    """A bucket on the wire: the connection's scheme, host and port, and the path before a key
    (the endpoint's own path, and /<bucket> in path style)."""

    scheme: str
    host: str
    port: int
    base_path: str

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def object_path(self, key: str) -> str:
        if not key:
            raise ValueError("an object key may not be empty")
        return f"{self.base_path}/{uri_encode(key, keep_slash=True)}"

    @property
    def bucket_path(self) -> str:
        return self.base_path or "/"


def bucket_address(target: ObjectStoreTarget) -> Address:
    """Path style (<endpoint>/<bucket>/<key>) or virtual-host style (<bucket>.<endpoint host>);
    no endpoint means AWS S3 in the target's region."""
    endpoint = target.endpoint or f"https://s3.{target.region}.amazonaws.com"
    url = urllib.parse.urlsplit(endpoint)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"object store endpoint {endpoint!r} is not an http(s) URL")
    port = url.port or (443 if url.scheme == "https" else 80)
    base = url.path.rstrip("/")
    if target.force_path_style:
        return Address(url.scheme, url.hostname, port, f"{base}/{uri_encode(target.bucket)}")
    return Address(url.scheme, f"{target.bucket}.{url.hostname}", port, base)


def error_detail(body: bytes) -> tuple[str | None, str | None]:
    """S3's <Error><Code/><Message/></Error>, or Nones for a body that is not one (HEAD has none)."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return None, None
    return root.findtext("{*}Code") or root.findtext("Code"), root.findtext("{*}Message") or root.findtext("Message")


def tls_context(target: ObjectStoreTarget, ca_file: str | None = None) -> ssl.SSLContext:
    """The target's CA bundle (and/or ca_file) as the whole trust store when given, the
    system's otherwise; no verification at all when verify_tls is off."""
    if not target.verify_tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if target.ca_bundle or ca_file:
        return ssl.create_default_context(cafile=ca_file, cadata=target.ca_bundle or None)
    return ssl.create_default_context()


# -- the client


class ObjectStoreError(Exception):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status  # the HTTP status; None when no response came


class ObjectStore:
    """One bucket. Every call is a fresh connection, so one instance may serve several threads."""

    def __init__(self, target: ObjectStoreTarget, access_key: str, secret_key: str, timeout: float = 60.0,
                 ca_file: str | None = None):  # fmt: skip
        self.target, self.access_key, self.secret_key, self.timeout = target, access_key, secret_key, timeout
        self.address = bucket_address(target)
        self.context: ssl.SSLContext | None = None
        if self.address.scheme == "https":
            try:
                self.context = tls_context(target, ca_file)
            except (ssl.SSLError, OSError, ValueError) as e:
                raise ObjectStoreError(f"the object store's CA bundle is not usable: {e}") from e

    # -- objects

    def put_file(self, key: str, path: Path) -> int:
        """Streams the file. Over https the payload goes unsigned (TLS protects it, and one read
        of the file is enough); over plain http it is hashed first, so the signature covers it."""
        size = path.stat().st_size
        payload_hash = UNSIGNED_PAYLOAD if self.address.scheme == "https" else file_sha256(path)

        def body() -> BinaryIO:
            return path.open("rb")

        self._call("put", key, "PUT", self.address.object_path(key), body=body, length=size,
                   payload_hash=payload_hash, receive=drain)  # fmt: skip
        return size

    def put_bytes(self, key: str, data: bytes) -> None:
        self._call("put", key, "PUT", self.address.object_path(key), body=lambda: data, length=len(data),
                   payload_hash=hashlib.sha256(data).hexdigest(), receive=drain)  # fmt: skip

    def get_to_file(self, key: str, path: Path) -> int:
        """Streams the object into the file (rewritten from the start on a retry)."""
        with path.open("wb") as out:

            def receive(response: http.client.HTTPResponse) -> int:
                out.seek(0)
                out.truncate()
                return copy_body(response, out.write)

            return self._call("get", key, "GET", self.address.object_path(key), receive=receive)

    def get_bytes(self, key: str) -> bytes:
        def receive(response: http.client.HTTPResponse) -> bytes:
            data = bytearray()
            copy_body(response, data.extend)
            return bytes(data)

        return self._call("get", key, "GET", self.address.object_path(key), receive=receive)

    def list(self, prefix: str, page_size: int = PAGE) -> list[tuple[str, int]]:
        """(key, size) of every object under the prefix, sorted by key (ListObjectsV2, page by page)."""
        found: list[tuple[str, int]] = []
        token: str | None = None
        while True:
            query = {"list-type": "2", "prefix": prefix, "max-keys": str(page_size)}
            if token:
                query["continuation-token"] = token
            root = self._call("list", prefix, "GET", self.address.bucket_path, query,
                              receive=lambda r: ElementTree.fromstring(read_body(r)))  # fmt: skip
            for item in root.iterfind("{*}Contents"):
                found.append((item.findtext("{*}Key") or "", int(item.findtext("{*}Size") or 0)))
            if (root.findtext("{*}IsTruncated") or "").lower() != "true":
                return sorted(found)
            token = root.findtext("{*}NextContinuationToken")
            if not token:
                raise ObjectStoreError(f"list {prefix}: a truncated listing without a continuation token")

    def delete(self, key: str) -> None:
        """Deleting what is not there is not an error (S3 itself answers 204 for it)."""
        self._call("delete", key, "DELETE", self.address.object_path(key), accept=(200, 204, 404), receive=drain)

    def exists(self, key: str) -> bool:
        return self._call("head", key, "HEAD", self.address.object_path(key), accept=(200, 404),
                          receive=lambda r: r.status == 200)  # fmt: skip

    # -- the wire

    def _call(self, operation: str, key: str, method: str, path: str, query: Mapping[str, str] | None = None, *,
              body: Callable[[], BinaryIO | bytes] | None = None, length: int = 0, payload_hash: str = EMPTY_SHA256,
              accept: tuple[int, ...] = (200,), receive: Callable[[http.client.HTTPResponse], T]) -> T:  # fmt: skip
        """One operation, retried on a connection failure or a 5xx (every operation here is
        idempotent, PUT included); a 4xx is the answer and is not retried."""
        where = self.address.host_header
        for attempt in range(ATTEMPTS):
            final = attempt == ATTEMPTS - 1
            try:
                return self._once(operation, key, method, path, query or {}, body, length, payload_hash, accept,
                                  receive)  # fmt: skip
            except ssl.SSLCertVerificationError as e:
                raise ObjectStoreError(f"{operation} {key}: the TLS certificate of {where} does not verify "
                                       f"({e.verify_message}): give the store's CA bundle, or turn TLS "
                                       "verification off") from e  # fmt: skip
            except ObjectStoreError as e:
                if e.status is None or e.status < 500 or final:
                    raise
                failure = str(e)
            except (OSError, http.client.HTTPException) as e:
                if final:
                    raise ObjectStoreError(f"{operation} {key} at {where} failed: {e!r}") from e
                failure = repr(e)
            log.info("object store: %s %s failed (attempt %d of %d), retrying: %s", operation, key, attempt + 1,
                     ATTEMPTS, failure)  # fmt: skip
            time.sleep(BACKOFF_SECONDS * 2**attempt)
        raise AssertionError("unreachable")

    def _once(self, operation: str, key: str, method: str, path: str, query: Mapping[str, str],
              body: Callable[[], BinaryIO | bytes] | None, length: int, payload_hash: str, accept: tuple[int, ...],
              receive: Callable[[http.client.HTTPResponse], T]) -> T:  # fmt: skip
        query_string = canonical_query(query)
        headers = {"host": self.address.host_header, "x-amz-date": amz_date(datetime.now(UTC)),
                   "x-amz-content-sha256": payload_hash}  # fmt: skip
        headers["Authorization"] = authorization(method, path, query_string, headers, payload_hash,
                                                 self.access_key, self.secret_key, self.target.region)  # fmt: skip
        if body is not None:
            headers["Content-Length"] = str(length)
        connection = self._connection()
        payload = body() if body is not None else None
        try:
            connection.request(method, path + (f"?{query_string}" if query_string else ""), body=payload,
                               headers=headers)  # fmt: skip
            response = connection.getresponse()
            if response.status not in accept:
                code, message = error_detail(read_body(response, ERROR_BODY_LIMIT))
                detail = f"{code}: {message}" if code else (response.reason or "no detail")
                raise ObjectStoreError(f"{operation} {key}: HTTP {response.status} {detail}", response.status)
            return receive(response)
        finally:
            if payload is not None and not isinstance(payload, bytes):
                payload.close()
            connection.close()

    def _connection(self) -> http.client.HTTPConnection:
        a = self.address
        if a.scheme == "https":
            return http.client.HTTPSConnection(a.host, a.port, timeout=self.timeout, context=self.context,
                                               blocksize=BLOCK)  # fmt: skip
        return http.client.HTTPConnection(a.host, a.port, timeout=self.timeout, blocksize=BLOCK)


def copy_body(response: http.client.HTTPResponse, write: Callable[[bytes], object]) -> int:
    """Copies a body in blocks; a connection cut short is an error (http.client's read(n) just
    stops early), so the retry takes it again."""
    total = 0
    while block := response.read(BLOCK):
        write(block)
        total += len(block)
    expected = response.getheader("Content-Length")
    if expected is not None and expected.isdigit() and int(expected) != total:
        raise http.client.IncompleteRead(b"", int(expected) - total)
    return total


def read_body(response: http.client.HTTPResponse, limit: int | None = None) -> bytes:
    """The whole body, or its first `limit` bytes (an error's body: only its Code and Message matter)."""
    if limit is not None:
        return response.read(limit)
    data = bytearray()
    copy_body(response, data.extend)
    return bytes(data)


def drain(response: http.client.HTTPResponse) -> None:
    response.read()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()
