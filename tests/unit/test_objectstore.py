"""The object store client's pure parts: Signature Version 4 against AWS's published examples,
key encoding, and where path-style and virtual-host-style requests go."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from kuberds.agent.objectstore import (
    EMPTY_SHA256,
    amz_date,
    authorization,
    bucket_address,
    canonical_query,
    canonical_request,
    credential_scope,
    error_detail,
    signing_key,
    string_to_sign,
    uri_encode,
)
from kuberds.contract.settings import ObjectStoreTarget

# The credentials of AWS's documentation examples.
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
S3_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # the S3 SigV4 examples
SUITE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"  # the SigV4 test suite and the signing-key example
S3_HOST = "examplebucket.s3.amazonaws.com"
S3_DATE = "20130524T000000Z"


def s3_example(method: str, path: str, query: str, payload_hash: str, **extra: str) -> str:
    headers = {"Host": S3_HOST, "x-amz-date": S3_DATE, "x-amz-content-sha256": payload_hash, **extra}
    auth = authorization(method, path, query, headers, payload_hash, ACCESS_KEY, S3_SECRET, "us-east-1")
    return auth.rsplit("Signature=", 1)[1]


def test_the_s3_get_object_example_step_by_step() -> None:
    headers = {"Host": S3_HOST, "Range": "bytes=0-9", "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": S3_DATE}
    canonical, signed = canonical_request("GET", "/test.txt", "", headers, EMPTY_SHA256)
    assert signed == "host;range;x-amz-content-sha256;x-amz-date"
    assert canonical == "\n".join([
        "GET", "/test.txt", "", f"host:{S3_HOST}", "range:bytes=0-9", f"x-amz-content-sha256:{EMPTY_SHA256}",
        f"x-amz-date:{S3_DATE}", "", signed, EMPTY_SHA256,
    ])  # fmt: skip
    scope = credential_scope("20130524", "us-east-1")
    assert scope == "20130524/us-east-1/s3/aws4_request"
    assert string_to_sign(S3_DATE, scope, canonical) == (
        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
    )
    assert authorization("GET", "/test.txt", "", headers, EMPTY_SHA256, ACCESS_KEY, S3_SECRET, "us-east-1") == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_the_s3_put_object_example_with_an_encoded_key() -> None:
    payload_hash = hashlib.sha256(b"Welcome to Amazon S3.").hexdigest()
    assert payload_hash == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
    path = "/" + uri_encode("test$file.text", keep_slash=True)
    assert path == "/test%24file.text"
    signature = s3_example("PUT", path, "", payload_hash, Date="Fri, 24 May 2013 00:00:00 GMT",
                           **{"x-amz-storage-class": "REDUCED_REDUNDANCY"})  # fmt: skip
    assert signature == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"


def test_the_s3_bucket_examples_with_query_strings() -> None:
    assert canonical_query({"lifecycle": ""}) == "lifecycle="
    assert s3_example("GET", "/", canonical_query({"lifecycle": ""}), EMPTY_SHA256) == (
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
    )
    query = canonical_query({"prefix": "J", "max-keys": "2"})
    assert query == "max-keys=2&prefix=J"
    assert s3_example("GET", "/", query, EMPTY_SHA256) == (
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
    )


def test_the_sigv4_suite_get_vanilla_and_the_signing_key_example() -> None:
    headers = {"Host": "example.amazonaws.com", "X-Amz-Date": "20150830T123600Z"}
    auth = authorization("GET", "/", "", headers, EMPTY_SHA256, ACCESS_KEY, SUITE_SECRET, "us-east-1", "service")
    assert auth == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )
    assert signing_key(SUITE_SECRET, "20150830", "us-east-1", "iam").hex() == (
        "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
    )


def test_header_values_are_trimmed_and_names_sorted_lower_case() -> None:
    canonical, signed = canonical_request("GET", "/", "", {"X-B": "  a   b  ", "x-a": "1"}, EMPTY_SHA256)
    assert signed == "x-a;x-b"
    assert "x-a:1\nx-b:a b\n\nx-a;x-b\n" in canonical


def test_keys_are_encoded_per_sigv4() -> None:
    assert uri_encode("redis/db-1/2024-05-01T03:00:00Z.rdb.sealed", keep_slash=True) == (
        "redis/db-1/2024-05-01T03%3A00%3A00Z.rdb.sealed"
    )
    assert uri_encode("a b+c=d&e~f_g-h.i", keep_slash=True) == "a%20b%2Bc%3Dd%26e~f_g-h.i"
    assert uri_encode("ü/é") == "%C3%BC%2F%C3%A9", "UTF-8, upper-case hex, / encoded outside a path"
    assert uri_encode("%") == "%25"
    # Query values: `/` is encoded, names sorted after encoding.
    assert canonical_query({"prefix": "a/b c", "list-type": "2", "continuation-token": "x+y="}) == (
        "continuation-token=x%2By%3D&list-type=2&prefix=a%2Fb%20c"
    )


def test_path_style_puts_the_bucket_in_the_path() -> None:
    target = ObjectStoreTarget(bucket="snaps", endpoint="https://127.0.0.1:8333", force_path_style=True)
    address = bucket_address(target)
    assert (address.scheme, address.host, address.port, address.host_header) == (
        "https", "127.0.0.1", 8333, "127.0.0.1:8333"
    )  # fmt: skip
    assert address.object_path("r/x:1.rdb") == "/snaps/r/x%3A1.rdb"
    assert address.bucket_path == "/snaps"
    # An endpoint with a path of its own keeps it; a default port is not in the Host header.
    address = bucket_address(ObjectStoreTarget(bucket="b", endpoint="http://minio.svc/s3/", force_path_style=True))
    assert (address.port, address.host_header, address.object_path("k")) == (80, "minio.svc", "/s3/b/k")


def test_virtual_host_style_puts_the_bucket_in_the_host() -> None:
    target = ObjectStoreTarget(bucket="snaps", endpoint="https://s3.example.com", force_path_style=False)
    address = bucket_address(target)
    assert (address.host, address.port, address.host_header) == ("snaps.s3.example.com", 443, "snaps.s3.example.com")
    assert address.object_path("a/b c") == "/a/b%20c"
    assert address.bucket_path == "/"


def test_no_endpoint_means_aws_s3_in_the_region() -> None:
    target = ObjectStoreTarget(bucket="snaps", region="eu-west-1", force_path_style=False)
    address = bucket_address(target)
    assert (address.scheme, address.host, address.port) == ("https", "snaps.s3.eu-west-1.amazonaws.com", 443)
    path_style = bucket_address(ObjectStoreTarget(bucket="snaps", region="eu-west-1"))
    assert (path_style.host, path_style.object_path("k")) == ("s3.eu-west-1.amazonaws.com", "/snaps/k")


def test_ipv6_endpoints_and_bad_endpoints() -> None:
    address = bucket_address(ObjectStoreTarget(bucket="b", endpoint="http://[::1]:9000"))
    assert (address.host, address.host_header) == ("::1", "[::1]:9000")
    for endpoint in ("ftp://host", "s3.example.com", "https://"):
        with pytest.raises(ValueError, match="not an http"):
            bucket_address(ObjectStoreTarget(bucket="b", endpoint=endpoint))
    with pytest.raises(ValueError, match="empty"):
        address.object_path("")


def test_amz_date_is_utc() -> None:
    moment = datetime(2024, 5, 1, 5, 0, 7, tzinfo=timezone(timedelta(hours=2)))
    assert amz_date(moment) == "20240501T030007Z"
    assert amz_date(datetime(2013, 5, 24, tzinfo=UTC)) == S3_DATE


def test_error_bodies() -> None:
    body = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SignatureDoesNotMatch</Code>'
            b"<Message>The request signature we calculated does not match</Message></Error>")  # fmt: skip
    assert error_detail(body) == ("SignatureDoesNotMatch", "The request signature we calculated does not match")
    assert error_detail(b"") == (None, None)
    assert error_detail(b"<html>oops") == (None, None)
