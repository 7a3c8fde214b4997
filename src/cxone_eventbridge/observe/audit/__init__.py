"""A tamper-evident audit log: JSON lines, each carrying the hash of the line before it.

Every control-plane change (``TargetChanged``: create, update, delete, test, apply) and every delivery
outcome (delivered or dead-lettered, with the tutorial's ``timestamp``, ``target``, ``success``,
``retries`` and a per-target metrics snapshot) becomes one line::

    {"seq":7,"prev":"<sha256 of line 6>","timestamp":"...","kind":"delivery",...,"hash":"<sha256 of this line>"}

- ``codec``: the line format and its check (``encode_line``, ``parse_line``);
- ``redact``: the second line of defence against writing a secret;
- ``files``: the live file, the rotated files and the lock they share;
- ``writer``: ``AuditLog``, which appends (batching delivery lines, rotating, repairing a torn tail);
- ``verify``: ``verify_audit_log``, which checks the chain and tells a torn tail from an edit.

What the chain proves and what it does not: without a key anybody able to write the file can rewrite it
from the edited line to the end with fresh hashes; ship lines off the host (a SIEM) to pin the chain.
Secrets are never written: records carry no secret fields, and :func:`redact` scrubs anything that looks
like one defensively.
"""

from __future__ import annotations

from cxone_eventbridge.exceptions import AuditLineError
from cxone_eventbridge.observe.audit.codec import GENESIS, ParsedLine, encode_line, parse_line
from cxone_eventbridge.observe.audit.files import rotated_files
from cxone_eventbridge.observe.audit.redact import REDACTED, redact
from cxone_eventbridge.observe.audit.verify import AuditProblem, AuditVerification, verify_audit_log
from cxone_eventbridge.observe.audit.writer import DEFAULT_AUDIT_PATH, AuditHealth, AuditLog

__all__ = [
    "DEFAULT_AUDIT_PATH",
    "GENESIS",
    "REDACTED",
    "AuditHealth",
    "AuditLineError",
    "AuditLog",
    "AuditProblem",
    "AuditVerification",
    "ParsedLine",
    "encode_line",
    "parse_line",
    "redact",
    "rotated_files",
    "verify_audit_log",
]
