"""The agent's S3 client against a real S3 server (SeaweedFS over HTTPS with its own CA): objects
in and out, listings, deletes, the errors it must name, and a sealed snapshot's round trip.

Needs no Kubernetes: only the session's SeaweedFS (the `s3` fixture)."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path

import pytest
from tests.support.dataplane import BUCKET
from tests.support.s3 import ACCESS_KEY, SECRET_KEY, SeaweedFS

from kuberds.agent.objectstore import ObjectStore, ObjectStoreError
from kuberds.agent.sealed import seal, unseal
from kuberds.contract.settings import ObjectStoreTarget

MiB = 1 << 20


@pytest.fixture(scope="module")
def target(s3: SeaweedFS) -> ObjectStoreTarget:
    """The gateway's self-signed certificate as the whole trust store."""
    pem = (s3.workdir / "tls.crt").read_text()
    return ObjectStoreTarget(bucket=BUCKET, endpoint=s3.endpoint, force_path_style=True, ca_bundle=pem)


@pytest.fixture(scope="module")
def store(target: ObjectStoreTarget) -> ObjectStore:
    return ObjectStore(target, ACCESS_KEY, SECRET_KEY, timeout=30)


@pytest.fixture
def prefix() -> str:
    """Each test under its own prefix of the shared bucket."""
    return f"objectstore-test/{uuid.uuid4().hex[:8]}/"


def test_bytes_in_and_out_and_missing_keys(store: ObjectStore, prefix: str) -> None:
    key = f"{prefix}redis/db-0/2024-05-01T03:00:00Z snapshot+1.rdb"  # `:`, a space and `+` in the key
    data = os.urandom(100_000)
    store.put_bytes(key, data)
    assert store.exists(key)
    assert store.get_bytes(key) == data
    store.put_bytes(key, b"")  # overwriting, with nothing
    assert store.get_bytes(key) == b""
    assert not store.exists(f"{prefix}missing")
    with pytest.raises(ObjectStoreError, match="NoSuchKey") as error:
        store.get_bytes(f"{prefix}missing")
    assert error.value.status == 404 and "get" in str(error.value) and f"{prefix}missing" in str(error.value)


def test_list_follows_continuation_and_sorts(store: ObjectStore, prefix: str) -> None:
    keys = [f"{prefix}l/{name}" for name in ("b", "a", "c:1", "c:0", "d/x", "d/y", "e")]
    for i, key in enumerate(keys):
        store.put_bytes(key, b"x" * i)
    store.put_bytes(f"{prefix}other", b"not listed")
    expected = sorted((key, i) for i, key in enumerate(keys))
    assert store.list(f"{prefix}l/", page_size=3) == expected, "three pages"
    assert store.list(f"{prefix}l/") == expected
    assert store.list(f"{prefix}l/d/") == [(f"{prefix}l/d/x", 4), (f"{prefix}l/d/y", 5)]
    assert store.list(f"{prefix}nothing-here/") == []


def test_delete_and_deleting_what_is_not_there(store: ObjectStore, prefix: str) -> None:
    store.put_bytes(f"{prefix}doomed", b"1")
    store.delete(f"{prefix}doomed")
    assert not store.exists(f"{prefix}doomed")
    store.delete(f"{prefix}doomed")
    store.delete(f"{prefix}never-was")


def test_wrong_credentials_name_the_s3_error(target: ObjectStoreTarget, prefix: str) -> None:
    with pytest.raises(ObjectStoreError, match="SignatureDoesNotMatch") as error:
        ObjectStore(target, ACCESS_KEY, "not-the-secret").put_bytes(f"{prefix}k", b"x")
    assert error.value.status == 403 and f"put {prefix}k" in str(error.value)
    with pytest.raises(ObjectStoreError, match="InvalidAccessKeyId"):
        ObjectStore(target, "nobody", SECRET_KEY).get_bytes(f"{prefix}k")


def test_tls_is_verified_unless_turned_off(target: ObjectStoreTarget, prefix: str) -> None:
    system_trust = ObjectStoreTarget(bucket=BUCKET, endpoint=target.endpoint, force_path_style=True)
    started = time.monotonic()
    with pytest.raises(ObjectStoreError, match=r"certificate .* does not verify") as error:
        ObjectStore(system_trust, ACCESS_KEY, SECRET_KEY).exists(f"{prefix}k")
    assert "CA bundle" in str(error.value) and error.value.status is None
    assert time.monotonic() - started < 5, "a certificate that does not verify is not retried"
    unverified = ObjectStoreTarget(bucket=BUCKET, endpoint=target.endpoint, force_path_style=True, verify_tls=False)
    assert not ObjectStore(unverified, ACCESS_KEY, SECRET_KEY).exists(f"{prefix}k")


def test_a_sealed_snapshot_round_trip(store: ObjectStore, prefix: str, tmp_path: Path) -> None:
    plain, sealed, fetched, restored = (tmp_path / n for n in ("dump.rdb", "dump.sealed", "fetched", "dump.out"))
    # Incompressible, so that the sealed file is ~20 MiB too (compression has its unit tests).
    with plain.open("wb") as f:
        for _ in range(20):
            f.write(os.urandom(MiB))
    with plain.open("rb") as source, sealed.open("wb") as out:
        result = seal(source, out, "snapshot passphrase")
    assert result.plain_bytes == 20 * MiB and result.sealed_bytes == sealed.stat().st_size

    key = f"{prefix}redis/db-0/2024-05-01T03:00:00Z.rdb.sealed"
    started = time.monotonic()
    assert store.put_file(key, sealed) == result.sealed_bytes
    put_seconds = time.monotonic() - started
    assert store.list(f"{prefix}redis/") == [(key, result.sealed_bytes)]
    started = time.monotonic()
    assert store.get_to_file(key, fetched) == result.sealed_bytes
    get_seconds = time.monotonic() - started
    assert hashlib.sha256(fetched.read_bytes()).digest() == hashlib.sha256(sealed.read_bytes()).digest()

    with fetched.open("rb") as source, restored.open("wb") as out:
        assert unseal(source, out, "snapshot passphrase") == result
    assert hashlib.sha256(restored.read_bytes()).hexdigest() == result.sha256
    size = result.sealed_bytes / MiB
    print(f"\nsealed snapshot of {size:.1f} MiB (20 MiB plain, encrypted): put {size / put_seconds:.1f} MiB/s, "
          f"get {size / get_seconds:.1f} MiB/s")  # fmt: skip
