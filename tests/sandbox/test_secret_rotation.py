"""``POST /targets/{id}/rotate-secret``: the new secret, the old one kept for its grace period, fingerprints only."""

from __future__ import annotations

from typing import Any

from cxone_eventbridge.fingerprints import secret_fingerprint
from cxone_eventbridge.signing import generate_signing_secret

from .conftest import ROUTES, TARGETS, Api

OLD = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NEW = generate_signing_secret()


async def _created(api: Api) -> dict[str, Any]:
    response = await api.create(api.body(signingSecret=OLD))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _route(api: Api, target_id: str) -> dict[str, Any]:
    table = (await api.http.get(ROUTES, headers=await api.headers())).json()
    (route,) = [item for item in table["items"] if item["id"] == target_id]
    return route  # type: ignore[no-any-return]


async def test_rotation_keeps_the_old_secret_until_the_grace_period_ends(api: Api) -> None:
    """The routes table serves both secrets during the grace period and only the new one after it."""
    target = await _created(api)
    assert target["signingSecretFingerprint"] == secret_fingerprint(target["id"], OLD)
    assert target["previousSigningSecret"] is None
    response = await api.http.post(
        f"{TARGETS}/{target['id']}/rotate-secret",
        json={"signingSecret": NEW, "gracePeriodSeconds": 3600},
        headers=await api.headers(),
    )
    assert response.status_code == 200, response.text
    rotated = response.json()
    assert "signingSecret" not in rotated  # the caller sent it: nothing to show
    assert rotated["signingSecretFingerprint"] == secret_fingerprint(target["id"], NEW)
    previous = rotated["previousSigningSecret"]
    assert previous == {
        "secret": None,
        "fingerprint": secret_fingerprint(target["id"], OLD),
        "expiresAt": "2027-01-15T09:00:00Z",  # the fake clock's now + 3600 s
    }
    got = (await api.http.get(f"{TARGETS}/{target['id']}", headers=await api.headers())).json()
    assert got["previousSigningSecret"] == previous
    assert OLD not in str(got)
    assert NEW not in str(got)

    route = await _route(api, target["id"])
    assert route["signingSecret"] == NEW
    assert route["previousSigningSecret"]["secret"] == OLD

    api.clock.advance(3600)
    route = await _route(api, target["id"])
    assert route["signingSecret"] == NEW
    assert route["previousSigningSecret"] is None
    got = (await api.http.get(f"{TARGETS}/{target['id']}", headers=await api.headers())).json()
    assert got["previousSigningSecret"] is None


async def test_a_generated_secret_is_shown_once(api: Api) -> None:
    """Without a secret the server generates one, returns it in this answer only, and serves it to routers."""
    target = await _created(api)
    response = await api.http.post(f"{TARGETS}/{target['id']}/rotate-secret", json={}, headers=await api.headers())
    assert response.status_code == 200, response.text
    generated = response.json()["signingSecret"]
    assert generated.startswith("whsec_")
    assert response.headers["Cache-Control"] == "no-store"
    assert (await _route(api, target["id"]))["signingSecret"] == generated
    got = (await api.http.get(f"{TARGETS}/{target['id']}", headers=await api.headers())).json()
    assert "signingSecret" not in got
    assert got["previousSigningSecret"]["expiresAt"] == "2027-01-16T08:00:00Z"  # the default grace: 24 h


async def test_a_zero_grace_period_cuts_over_at_once(api: Api) -> None:
    """gracePeriodSeconds 0 keeps no previous secret."""
    target = await _created(api)
    response = await api.http.post(
        f"{TARGETS}/{target['id']}/rotate-secret",
        json={"signingSecret": NEW, "gracePeriodSeconds": 0},
        headers=await api.headers(),
    )
    assert response.status_code == 200, response.text
    assert response.json()["previousSigningSecret"] is None
    assert (await _route(api, target["id"]))["previousSigningSecret"] is None


async def test_a_retried_rotation_with_its_idempotency_key_is_answered_again_not_done_twice(api: Api) -> None:
    """The same Idempotency-Key replays the first answer; the old secret stays the previous one."""
    target = await _created(api)
    headers = {**await api.headers(), "Idempotency-Key": "rotate-1"}
    url = f"{TARGETS}/{target['id']}/rotate-secret"
    first = await api.http.post(url, json={}, headers=headers)
    again = await api.http.post(url, json={}, headers=headers)
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    route = await _route(api, target["id"])
    assert route["signingSecret"] == first.json()["signingSecret"]
    assert route["previousSigningSecret"]["secret"] == OLD
    other = await api.http.post(url, json={"gracePeriodSeconds": 60}, headers=headers)
    assert other.status_code == 422


async def test_a_put_with_a_new_secret_ends_the_grace_period(api: Api) -> None:
    """A replace that sets a different signing secret is an immediate cut-over; one that omits it keeps both."""
    target = await _created(api)
    headers = await api.headers()
    await api.http.post(f"{TARGETS}/{target['id']}/rotate-secret", json={"signingSecret": NEW}, headers=headers)
    kept = await api.http.put(f"{TARGETS}/{target['id']}", json=api.body(description="x"), headers=headers)
    assert kept.json()["previousSigningSecret"] is not None
    third = generate_signing_secret()
    replaced = await api.http.put(f"{TARGETS}/{target['id']}", json=api.body(signingSecret=third), headers=headers)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["previousSigningSecret"] is None
    assert (await _route(api, target["id"]))["signingSecret"] == third


async def test_invalid_rotations_are_422_naming_the_field(api: Api) -> None:
    """A secret that is not whsec_, a grace period out of range or an unknown key: 422 with the field, no echo."""
    target = await _created(api)
    headers = await api.headers()
    url = f"{TARGETS}/{target['id']}/rotate-secret"
    for body, field in (
        ({"signingSecret": "not-a-whsec-secret-value"}, "signingSecret"),
        ({"gracePeriodSeconds": 8 * 86_400}, "gracePeriodSeconds"),
        ({"gracePeriodSeconds": "1h"}, "gracePeriodSeconds"),
        ({"grace": 1}, "grace"),
    ):
        response = await api.http.post(url, json=body, headers=headers)
        assert response.status_code == 422, body
        assert [e["field"] for e in response.json()["errors"]] == [field]
        assert "not-a-whsec" not in response.text
    assert (await api.http.post(url, json=[1], headers=headers)).status_code == 422
    missing = await api.http.post(f"{TARGETS}/tgt_missing/rotate-secret", json={}, headers=headers)
    assert missing.status_code == 404
    stale = await api.http.post(url, json={}, headers={**headers, "If-Match": '"nope-1"'})
    assert stale.status_code == 412
