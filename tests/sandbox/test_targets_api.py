"""The targets routes: CRUD, tenants, unique names, ETag/If-Match, idempotency, cursors, write-only secrets."""

from __future__ import annotations

import json

import pytest

from cxone_eventbridge.fingerprints import secret_fingerprint
from cxone_eventbridge.models import IntegrationTarget, TargetPage
from cxone_eventbridge.sandbox.config import SandboxClient

TARGETS = "/api/v2/integrations/targets"
ROUTES = "/api/v2/events/routes"
SIGNING_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def test_create_returns_201_with_etag_location_and_server_fields(api) -> None:
    """Create answers the bare target with id, pending status, timestamps, an ETag and a Location."""
    response = await api.create(api.body())
    assert response.status_code == 201
    body = response.json()
    assert body["id"].startswith("tgt_")
    assert body["status"] == "pending"
    assert body["createdAt"] == body["updatedAt"]
    assert response.headers["ETag"].startswith('"')
    assert response.headers["Location"] == f"{TARGETS}/{body['id']}"
    IntegrationTarget.model_validate(body)  # the client's model parses what the server sends


async def test_secrets_are_write_only_on_target_routes(api) -> None:
    """Responses carry value null, the salted fingerprint, and no signing secret."""
    created = (await api.create(api.body(signingSecret=SIGNING_SECRET))).json()
    fetched = (await api.http.get(f"{TARGETS}/{created['id']}", headers=await api.headers())).json()
    for body in (created, fetched):
        assert body["authentication"]["value"] is None
        assert body["authentication"]["valueFingerprint"] == secret_fingerprint(created["id"], "tok-123")
        assert "signingSecret" not in body
        assert "tok-123" not in json.dumps(body)


async def test_routes_table_reveals_secrets_and_generates_a_signing_secret(api) -> None:
    """The routes table serves auth values and signing secrets; one is generated when none was sent."""
    created = (await api.create(api.body())).json()
    routes = await api.http.get(ROUTES, headers=await api.headers())
    assert routes.status_code == 200
    (item,) = routes.json()["items"]
    assert item["id"] == created["id"]
    assert item["authentication"]["value"] == "tok-123"
    assert item["signingSecret"].startswith("whsec_")
    assert routes.json()["generatedAt"].endswith("Z")


async def test_routes_table_needs_its_scope(api) -> None:
    """A token without event:route:read gets 403 from the routes table."""
    headers = await api.headers(scope="integration:target:read integration:target:write")
    response = await api.http.get(ROUTES, headers=headers)
    assert response.status_code == 403
    assert "event:route:read" in response.json()["message"]


async def test_snake_case_keys_and_nulls_are_accepted(api) -> None:
    """The tutorial's client sends snake_case nested keys and nulls meaning 'default'."""
    body = {
        "name": "tutorial",
        "endpoint": "https://hooks.example.com/x",
        "authentication": {"type": "api_key", "value": "k", "header_name": "X-Key"},
        "retry_policy": {"max_retries": 5, "backoff_strategy": "linear", "timeout_ms": 2000},
        "event_filters": None,
        "event_pattern": None,
        "description": None,
    }
    response = await api.create(body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["retryPolicy"] == {"maxRetries": 5, "backoffStrategy": "linear", "timeoutMs": 2000}
    assert created["authentication"]["headerName"] == "X-Key"
    assert created["eventFilters"] == []


async def test_invalid_fields_are_all_reported_in_wire_form(api) -> None:
    """One 422 lists every invalid field by its camelCase path, never echoing the secret."""
    body = api.body(
        endpoint="http://plain.example.com",
        retryPolicy={"maxRetries": 99, "timeoutMs": 10},
        eventFilters=[{"field": "a", "operator": "gt", "value": "x"}],
        authentication={"type": "basic", "value": "no-colon-secret"},
        surprise=1,
    )
    response = await api.create(body)
    assert response.status_code == 422
    fields = {error["field"] for error in response.json()["errors"]}
    assert {
        "endpoint",
        "retryPolicy.maxRetries",
        "retryPolicy.timeoutMs",
        "eventFilters[0].value",
        "authentication.value",
        "surprise",
    } <= fields
    assert "no-colon-secret" not in response.text
    assert response.json()["error"] == "validation_failed"


@pytest.mark.parametrize(
    ("content", "content_type", "status", "error"),
    [
        (b"{not json", "application/json", 400, "invalid_json"),
        (b"", "application/json", 400, "invalid_json"),
        (b'{"name": NaN}', "application/json", 400, "invalid_json"),
        (b"\xff\xfe", "application/json", 400, "invalid_json"),
        (b"[" * 100 + b"]" * 100, "application/json", 400, "invalid_json"),
        (b'{"a":' * 40 + b"1" + b"}" * 40, "application/json", 400, "invalid_json"),
        (b'"a string"', "application/json", 422, "validation_failed"),
        (b"name=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b"1" * 5000, "application/json", 400, "invalid_json"),
    ],
)
async def test_bad_bodies_get_4xx_not_500(api, content, content_type, status, error) -> None:
    """Malformed JSON, NaN, bad UTF-8, deep nesting, non-objects and wrong media types get clear 4xx."""
    headers = {**(await api.headers()), "Content-Type": content_type}
    response = await api.http.post(TARGETS, content=content, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error


async def test_huge_body_is_413(api) -> None:
    """A body over the limit is refused with 413 before it is parsed."""
    body = api.body(description="x" * (2 << 20))
    response = await api.create(body)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


async def test_names_are_unique_per_tenant(make_api) -> None:
    """A second target with the same name is 409 in the same tenant, but fine in another tenant."""
    api = await make_api(extra_clients=(SandboxClient("other", "other-secret"),))
    assert (await api.create(api.body())).status_code == 201
    duplicate = await api.create(api.body())
    assert duplicate.status_code == 409
    assert duplicate.json()["errors"] == [{"field": "name", "message": "is already used by another target"}]
    assert (await api.create(api.body(), client_id="other", client_secret="other-secret")).status_code == 201


async def test_tenants_do_not_see_each_other(make_api) -> None:
    """Another client's token lists nothing and gets 404 for this tenant's target."""
    api = await make_api(extra_clients=(SandboxClient("other", "other-secret"),))
    created = (await api.create(api.body())).json()
    other = await api.headers(client_id="other", client_secret="other-secret")
    assert (await api.http.get(TARGETS, headers=other)).json()["items"] == []
    assert (await api.http.get(f"{TARGETS}/{created['id']}", headers=other)).status_code == 404
    assert (await api.http.delete(f"{TARGETS}/{created['id']}", headers=other)).status_code == 404
    assert (await api.http.get(ROUTES, headers=other)).json()["items"] == []


async def test_idempotency_key_replays_the_same_target(api) -> None:
    """A create retried with the same Idempotency-Key returns the first target, not a second or a 409."""
    headers = {**(await api.headers()), "Idempotency-Key": "key-1"}
    first = await api.http.post(TARGETS, json=api.body(), headers=headers)
    again = await api.http.post(TARGETS, json=api.body(), headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len((await api.http.get(TARGETS, headers=headers)).json()["items"]) == 1


async def test_idempotency_key_with_another_body_is_422(api) -> None:
    """Reusing a key for a different request is refused, naming the header."""
    headers = {**(await api.headers()), "Idempotency-Key": "key-2"}
    await api.http.post(TARGETS, json=api.body(), headers=headers)
    response = await api.http.post(TARGETS, json=api.body("other"), headers=headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"


async def test_cursor_pagination_walks_every_target_once(api) -> None:
    """Pages of 2 over 5 targets give every target once, in creation order, and end with nextCursor null."""
    for i in range(5):
        assert (await api.create(api.body(f"t{i}"))).status_code == 201
    headers = await api.headers()
    names: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = TargetPage.model_validate((await api.http.get(TARGETS, params=params, headers=headers)).json())
        names += [item.name for item in page.items]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert names == [f"t{i}" for i in range(5)]
    assert pages == 3


async def test_list_filters_by_name(api) -> None:
    """?name= returns only the target with that exact name."""
    await api.create(api.body("a"))
    await api.create(api.body("b"))
    response = await api.http.get(TARGETS, params={"name": "b"}, headers=await api.headers())
    assert [item["name"] for item in response.json()["items"]] == ["b"]


@pytest.mark.parametrize("cursor", ["garbage", "c1.-1", "c1.abc", "c1.١٢", "c1." + "9" * 40])
async def test_invalid_cursor_is_400(api, cursor) -> None:
    """A cursor the server did not issue is a 400 naming the cursor, never a 500."""
    response = await api.http.get(TARGETS, params={"cursor": cursor}, headers=await api.headers())
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "cursor"


@pytest.mark.parametrize("limit", ["0", "-1", "1000", "ten"])
async def test_invalid_limit_is_422_naming_it(api, limit) -> None:
    """An out-of-range or non-numeric limit is a 422 whose field is 'limit'."""
    response = await api.http.get(TARGETS, params={"limit": limit}, headers=await api.headers())
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "limit"


async def test_get_unknown_id_is_404(api) -> None:
    """Any unknown id, however odd, is a 404 with an error body."""
    response = await api.http.get(f"{TARGETS}/no%20such%0Aid", headers=await api.headers())
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


async def test_put_keeps_the_signing_secret_and_the_read_back_auth_value(api) -> None:
    """A PUT of the read form (value null + fingerprint, no signingSecret) keeps both secrets."""
    created = (await api.create(api.body(signingSecret=SIGNING_SECRET))).json()
    headers = await api.headers()
    replacement = {**created, "description": "changed"}
    response = await api.http.put(f"{TARGETS}/{created['id']}", json=replacement, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["description"] == "changed"
    (item,) = (await api.http.get(ROUTES, headers=headers)).json()["items"]
    assert item["signingSecret"] == SIGNING_SECRET
    assert item["authentication"]["value"] == "tok-123"


async def test_put_with_a_stale_fingerprint_is_422(api) -> None:
    """A read form whose fingerprint does not match the stored value is refused, naming the field."""
    created = (await api.create(api.body())).json()
    stale = {**created, "authentication": {"type": "bearer", "valueFingerprint": "sha256:0000000000000000"}}
    response = await api.http.put(f"{TARGETS}/{created['id']}", json=stale, headers=await api.headers())
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "authentication.valueFingerprint"


async def test_put_with_new_values_rotates_them(api) -> None:
    """Sending a new auth value and signing secret replaces them and moves the status back to pending."""
    created = (await api.create(api.body())).json()
    headers = await api.headers()
    body = api.body(authentication={"type": "bearer", "value": "tok-456"}, signingSecret=SIGNING_SECRET)
    updated = (await api.http.put(f"{TARGETS}/{created['id']}", json=body, headers=headers)).json()
    assert updated["authentication"]["valueFingerprint"] == secret_fingerprint(created["id"], "tok-456")
    (item,) = (await api.http.get(ROUTES, headers=headers)).json()["items"]
    assert item["signingSecret"] == SIGNING_SECRET
    assert updated["createdAt"] == created["createdAt"]


async def test_put_with_mismatched_id_is_422(api) -> None:
    """A body id that differs from the path id is refused."""
    created = (await api.create(api.body())).json()
    response = await api.http.put(
        f"{TARGETS}/{created['id']}", json={**api.body(), "id": "tgt_other"}, headers=await api.headers()
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "id"


async def test_if_match_guards_against_lost_updates(api) -> None:
    """A write with the current ETag succeeds and changes the ETag; one with the old ETag gets 412."""
    created = await api.create(api.body())
    target_id, etag = created.json()["id"], created.headers["ETag"]
    headers = await api.headers()
    first = await api.http.patch(
        f"{TARGETS}/{target_id}", json={"description": "one"}, headers={**headers, "If-Match": etag}
    )
    assert first.status_code == 200
    assert first.headers["ETag"] != etag
    stale = await api.http.patch(
        f"{TARGETS}/{target_id}", json={"description": "two"}, headers={**headers, "If-Match": etag}
    )
    assert stale.status_code == 412
    assert stale.headers["ETag"] == first.headers["ETag"]
    delete_stale = await api.http.delete(f"{TARGETS}/{target_id}", headers={**headers, "If-Match": etag})
    assert delete_stale.status_code == 412
    star = await api.http.put(f"{TARGETS}/{target_id}", json=api.body(), headers={**headers, "If-Match": "*"})
    assert star.status_code == 200


async def test_get_returns_the_etag_a_write_can_use(api) -> None:
    """GET's ETag is accepted by If-Match on PUT."""
    target_id = (await api.create(api.body())).json()["id"]
    headers = await api.headers()
    got = await api.http.get(f"{TARGETS}/{target_id}", headers=headers)
    put = await api.http.put(
        f"{TARGETS}/{target_id}", json=api.body(), headers={**headers, "If-Match": got.headers["ETag"]}
    )
    assert put.status_code == 200


async def test_patch_merges_snake_case_changes_and_keeps_secrets(api) -> None:
    """A merge patch changes only what it names (snake_case accepted) and keeps the auth value."""
    created = (await api.create(api.body(description="d"))).json()
    headers = await api.headers()
    patch = {"retry_policy": {"max_retries": 7}, "description": None}
    response = await api.http.patch(f"{TARGETS}/{created['id']}", json=patch, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["retryPolicy"]["maxRetries"] == 7
    assert body["retryPolicy"]["timeoutMs"] == 5000
    assert body["description"] is None
    assert body["authentication"]["valueFingerprint"] == created["authentication"]["valueFingerprint"]


async def test_patch_changing_auth_type_starts_from_scratch(api) -> None:
    """Switching authentication.type does not carry over the old value or header name."""
    created = (await api.create(api.body(authentication={"type": "api_key", "value": "k", "headerName": "X-K"}))).json()
    patch = {"authentication": {"type": "bearer", "value": "new"}}
    response = await api.http.patch(f"{TARGETS}/{created['id']}", json=patch, headers=await api.headers())
    assert response.status_code == 200, response.text
    assert response.json()["authentication"]["headerName"] is None


async def test_patch_with_invalid_change_is_422(api) -> None:
    """An invalid patched field is reported by its wire path; unknown fields too."""
    created = (await api.create(api.body())).json()
    response = await api.http.patch(
        f"{TARGETS}/{created['id']}", json={"retryPolicy": {"maxRetries": -1}, "bogus": 1}, headers=await api.headers()
    )
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"retryPolicy.maxRetries", "bogus"}


async def test_patch_to_a_taken_name_is_409(api) -> None:
    """Renaming onto another target's name is a conflict."""
    await api.create(api.body("a"))
    b = (await api.create(api.body("b"))).json()
    response = await api.http.patch(f"{TARGETS}/{b['id']}", json={"name": "a"}, headers=await api.headers())
    assert response.status_code == 409


async def test_disable_and_reenable(api) -> None:
    """status disabled is the client's to set; sending another status re-enables as pending."""
    created = (await api.create(api.body())).json()
    headers = await api.headers()
    disabled = await api.http.patch(f"{TARGETS}/{created['id']}", json={"status": "disabled"}, headers=headers)
    assert disabled.json()["status"] == "disabled"
    kept = await api.http.patch(f"{TARGETS}/{created['id']}", json={"description": "x"}, headers=headers)
    assert kept.json()["status"] == "disabled"
    enabled = await api.http.patch(f"{TARGETS}/{created['id']}", json={"status": "active"}, headers=headers)
    assert enabled.json()["status"] == "pending"


async def test_delete_then_get_is_404(api) -> None:
    """DELETE answers 204 and the target is gone; a second DELETE is 404."""
    created = (await api.create(api.body())).json()
    headers = await api.headers()
    assert (await api.http.delete(f"{TARGETS}/{created['id']}", headers=headers)).status_code == 204
    assert (await api.http.get(f"{TARGETS}/{created['id']}", headers=headers)).status_code == 404
    assert (await api.http.delete(f"{TARGETS}/{created['id']}", headers=headers)).status_code == 404


async def test_create_with_read_form_auth_is_422(api) -> None:
    """A create cannot use a fingerprint in place of the value: there is nothing to keep."""
    body = api.body(authentication={"type": "bearer", "valueFingerprint": "sha256:0000000000000000"})
    response = await api.create(body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "authentication.value"


async def test_unknown_route_and_method_have_error_bodies(api) -> None:
    """404 and 405 from routing carry the same error body shape."""
    missing = await api.http.get("/api/v2/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    wrong = await api.http.put("/api/v2/integrations/targets", headers=await api.headers())
    assert wrong.status_code == 405


async def test_patch_of_an_input_transformer_merges_and_keeps_the_users_variable_names(api) -> None:
    """A PATCH changes the template alone (snake_case too), keeps variable names; the input forms stay exclusive."""
    transformer = {"inputPathsMap": {"agent_name": "$.agent.name"}, "inputTemplate": "<agent_name>"}
    created = (await api.create(api.body(inputTransformer=transformer))).json()
    headers = await api.headers()
    url = f"{TARGETS}/{created['id']}"
    response = await api.http.patch(
        url, json={"inputTransformer": {"input_template": "agent <agent_name>"}}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["inputTransformer"] == {**transformer, "inputTemplate": "agent <agent_name>"}
    clash = await api.http.patch(url, json={"inputPath": "$.agent"}, headers=headers)
    assert clash.status_code == 422
    assert "exclusive" in clash.text
    switched = await api.http.patch(url, json={"inputTransformer": None, "inputPath": "$.agent"}, headers=headers)
    assert switched.status_code == 200, switched.text
    assert (switched.json()["inputTransformer"], switched.json()["inputPath"]) == (None, "$.agent")
