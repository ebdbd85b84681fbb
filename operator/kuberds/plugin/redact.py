"""What keeps secrets out of a support bundle. Pure.

Three layers, each enough on its own for what it covers:

1. Secrets are written with their keys only: every value is "REDACTED", and the
   last-applied-configuration annotation (kubectl apply keeps a Secret's data there) goes too.
2. Everything else is scrubbed by shape: a field or environment variable whose name says
   password, secret, token, passphrase, credential, API or access key has a literal value
   replaced (a field that only *names* a Secret, such as passwordSecretName, is kept); in free
   text (ConfigMap files, annotations, arguments, events, logs) `password=…`, `"token": "…"`,
   `secret: …`, a URL's user:password@ and PEM private keys are replaced.
3. The values of the server's own Secrets, read while the bundle is made (never written), are
   replaced wherever they appear, as text or in base64, in every file of the bundle.

kuberds itself puts no secret in a ConfigMap: agent.json (NAME-settings) is built to carry none
(contract/settings.py: secrets reach the pods as environment variables from Secret references),
the proxy's pgbouncer.ini names a users file in the pod's memory, never a password, and
Patroni's leader/config/sync ConfigMaps hold the HA state (Patroni keeps its credentials in
its own configuration file, in the pod's memory). The layers above are for what users add
(spec.parameters, their own annotations) and for what a future change might let through.
"""

from __future__ import annotations

import base64
import copy
import re

REDACTED = "REDACTED"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_SENSITIVE = r"pass(?:word|wd|phrase)?|pwd|secret|token|credential|api[-_.]?key|access[-_.]?key|private[-_.]?key|cipher"
SENSITIVE_NAME = re.compile(_SENSITIVE, re.IGNORECASE)
# Names that refer to a secret rather than hold one (a Secret's name, a file, a key in a Secret),
# or that set how secrets are handled (PostgreSQL's password_encryption, MariaDB's
# default_password_lifetime): not secrets themselves.
REFERENCE_NAME = re.compile(r"(name|names|ref|file|path|dir|directory|kind|type|key_id|keyid|encryption|lifetime|"
                            r"validation|policy|length|mode|method|algorithm|hash|seconds|days|command|query)$",
                            re.IGNORECASE)  # fmt: skip
# Keys of a Secret whose values are public (the others are scrubbed wherever they turn up).
PUBLIC_SECRET_KEYS = frozenset({"username", "user", "ca.crt", "tls.crt"})
MIN_SCRUBBED_LENGTH = 6  # shorter values would blank out ordinary words

_ASSIGNMENT = re.compile(
    r"(?P<key>[\"']?[\w.-]*(?:" + _SENSITIVE + r")[\w.-]*[\"']?)"
    r"(?P<sep>[ \t]*[=:][ \t]*)"
    r"(?P<value>\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*'|[^\s,;&{}\[\]\"']+)",
    re.IGNORECASE,
)
_URL_CREDENTIALS = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+):(?P<password>[^@\s/]+)@")
_PRIVATE_KEY = re.compile(r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----", re.DOTALL)
# Values no secret has: a switch, nothing, or a redaction already.
_HARMLESS = {"", "null", "none", "true", "false", "on", "off", "yes", "no", "0", "1", "redacted", "<redacted>",
             "(hidden)", "***"}  # fmt: skip


def sensitive(name: str) -> bool:
    """A field or variable name that holds a secret (not one that only names a Secret)."""
    bare = name.strip("\"'")
    return bool(SENSITIVE_NAME.search(bare)) and not REFERENCE_NAME.search(bare)


def _assignment(match: re.Match) -> str:
    key, sep, value = match.group("key"), match.group("sep"), match.group("value")
    if not sensitive(key) or value.strip("\"'").lower() in _HARMLESS:
        return match.group(0)
    quote = value[0] if value[0] in "\"'" else ""
    return f"{key}{sep}{quote}{REDACTED}{quote}"


def scrub_text(text: str) -> str:
    """Free text with what looks like a secret in it replaced (layer 2)."""
    text = _PRIVATE_KEY.sub(lambda m: f"-----BEGIN {m.group(1)}PRIVATE KEY-----{REDACTED}-----END "
                                      f"{m.group(1)}PRIVATE KEY-----", text)  # fmt: skip
    text = _URL_CREDENTIALS.sub(lambda m: f"{m.group('head')}:{REDACTED}@", text)
    return _ASSIGNMENT.sub(_assignment, text)


def scrub_object(value: object, key: str = "") -> object:
    """A copy of an API object (or any JSON value) with layer 2 applied to every string."""
    if isinstance(value, dict):
        if isinstance(value.get("name"), str) and "value" in value and sensitive(value["name"]):
            value = {**value, "value": REDACTED}  # an environment variable (or any name/value pair)
        return {k: scrub_object(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_object(v, key) for v in value]
    if isinstance(value, str):
        if key and sensitive(key) and value.strip().lower() not in _HARMLESS:
            return REDACTED
        return scrub_text(value)
    return value


def without_noise(obj: dict) -> dict:
    """managedFields say who wrote which field: long, and of no help in a support bundle."""
    obj = copy.deepcopy(obj)
    (obj.get("metadata") or {}).pop("managedFields", None)
    return obj


def redact_secret(secret: dict) -> dict:
    """A Secret with its keys and no value (layer 1)."""
    meta = copy.deepcopy(secret.get("metadata") or {})
    meta.pop("managedFields", None)
    annotations = meta.get("annotations") or {}
    if LAST_APPLIED in annotations:
        annotations[LAST_APPLIED] = REDACTED
    keys = sorted({*(secret.get("data") or {}), *(secret.get("stringData") or {})})
    out = {"apiVersion": secret.get("apiVersion", "v1"), "kind": "Secret", "metadata": meta,
           "type": secret.get("type"), "data": dict.fromkeys(keys, REDACTED)}  # fmt: skip
    if secret.get("immutable") is not None:
        out["immutable"] = secret["immutable"]
    return out


def secret_values(secret: dict) -> set[str]:
    """The values of a Secret's non-public keys, to be scrubbed wherever they appear (layer 3)."""
    values = set()
    for key, encoded in (secret.get("data") or {}).items():
        if key in PUBLIC_SECRET_KEYS or not encoded:
            continue
        try:
            decoded = base64.b64decode(encoded).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            decoded = None
        values.add(encoded)
        if decoded:
            values.add(decoded)
            # A PEM's or a file's lines (not a PEM's armour: "-----BEGIN PRIVATE KEY-----" is no secret).
            values |= {line.strip() for line in decoded.splitlines() if not line.startswith("-----")}
    return {v for v in values if len(v) >= MIN_SCRUBBED_LENGTH}


class Scrubber:
    """Layers 2 and 3 over every file of a bundle."""

    def __init__(self, known: set[str] | None = None):
        self.known: set[str] = set(known or ())

    def learn(self, values: set[str]) -> None:
        self.known |= values

    def text(self, text: str) -> str:
        # The longest first: a value that contains another is replaced whole.
        for value in sorted(self.known, key=len, reverse=True):
            if value in text:
                text = text.replace(value, REDACTED)
        return scrub_text(text)
