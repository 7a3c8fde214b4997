"""The audit line format: ``{"seq":N,"prev":"<hash of line N-1>",...record...,"hash":"<hash of this line>"}``.

``hash`` is the SHA-256 of the exact bytes of the line without its ``,"hash":"..."`` suffix, so checking
a line never depends on re-serialising JSON. The first line's ``prev`` is :data:`GENESIS`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cxone_eventbridge.exceptions import AuditLineError

GENESIS = "0" * 64

_HASH_SUFFIX = re.compile(rb',"hash":"([0-9a-f]{64})"\}$')
_SEQ_PREFIX = re.compile(rb'^\{"seq":(\d+),')


def line_hash(body: bytes) -> str:
    """The hex SHA-256 that a line whose bytes without the hash suffix are ``body`` carries."""
    return hashlib.sha256(body).hexdigest()


def encode_line(record: Mapping[str, Any], *, seq: int, prev: str) -> bytes:
    """One audit line (with its newline): ``seq`` and ``prev`` first, the record, then its own hash."""
    payload = {"seq": seq, "prev": prev, **{k: v for k, v in record.items() if k not in {"seq", "prev", "hash"}}}
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    digest = line_hash(body)
    return body[:-1] + b',"hash":"' + digest.encode() + b'"}\n'


def hash_of_encoded(line: bytes) -> str:
    """The hash an ``encode_line`` result carries: the 64 hex digits before its closing ``"}\\n``."""
    return line[-67:-3].decode()


@dataclass(frozen=True, slots=True)
class ParsedLine:
    """A complete audit line whose own hash checks out."""

    seq: int
    prev: str
    hash: str
    record: dict[str, Any]


def has_hash_suffix(line: bytes) -> bool:
    """Whether ``line`` ends as an audit line does (so a failed check means an edit, not garbage)."""
    return _HASH_SUFFIX.search(line) is not None


def leading_seq(line: bytes) -> int | None:
    """The ``seq`` a line starts with, read without checking the line; None when it starts otherwise."""
    match = _SEQ_PREFIX.match(line)
    return int(match.group(1)) if match else None


def parse_line(line: bytes) -> ParsedLine:
    """Check one line (without its newline) against its own hash; AuditLineError says what is wrong."""
    match = _HASH_SUFFIX.search(line)
    if match is None:
        raise AuditLineError("has no hash")
    body = line[: match.start()] + b"}"
    digest = match.group(1).decode()
    if line_hash(body) != digest:
        raise AuditLineError("does not match its hash (its content was changed)")
    try:
        record = json.loads(body)
    except ValueError as exc:
        raise AuditLineError("is not valid JSON") from exc
    if not isinstance(record, dict):
        raise AuditLineError("is not a JSON object")
    seq, prev = record.get("seq"), record.get("prev")
    if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(prev, str):
        raise AuditLineError("has no seq/prev")
    return ParsedLine(seq=seq, prev=prev, hash=digest, record=record)
