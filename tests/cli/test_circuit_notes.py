"""`router status` says why a circuit is open and when the next probe goes out."""

from __future__ import annotations

from cxone_eventbridge.cli.circuit_notes import circuit_note, hold_note
from cxone_eventbridge.wire import iso_time

T0 = 1_700_000_000.0


def test_an_open_circuit_says_when_it_probes_and_why() -> None:
    """Time to the probe (and its clock time), then the reason the router gave."""
    row = {
        "target": "crm",
        "circuit": "open",
        "circuitUntil": iso_time(T0 + 4.25),
        "circuitReason": "5 failed attempts",
    }
    assert circuit_note(row, now=T0) == "circuit of crm is open, next probe in 4.2 s (at 22:13:24Z); 5 failed attempts"


def test_half_open_closed_and_missing_details() -> None:
    """Half-open names the probe; closed says nothing; a row without details still reads."""
    assert circuit_note({"target": "bi", "circuit": "half_open", "circuitReason": None}, now=T0) == (
        "circuit of bi is half-open: the next delivery is the probe"
    )
    assert circuit_note({"target": "bi", "circuit": "closed"}, now=T0) is None
    assert circuit_note({"target": "bi", "circuit": "open", "circuitUntil": iso_time(T0 - 1)}, now=T0) == (
        "circuit of bi is open, next probe in 0.0 s (at 22:13:19Z)"
    )


def test_a_held_target_says_why_and_what_releases_it() -> None:
    """Paused points at resume, disabled after a 410 at enable; a delivering target says nothing."""
    assert hold_note({"target": "crm", "hold": "paused"}) == (
        "target crm is paused: its deliveries wait in the queue (`cxeb router resume crm`)"
    )
    assert hold_note({"target": "crm", "hold": "gone"}) == (
        "target crm is disabled (gone): its deliveries wait in the queue (`cxeb router enable crm`)"
    )
    assert hold_note({"target": "crm", "hold": None}) is None
