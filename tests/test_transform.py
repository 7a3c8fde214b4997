"""Input transformation: the EventBridge documentation's examples give exactly the documented output."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from cxone_eventbridge.exceptions import InvalidTransformError
from cxone_eventbridge.models import IntegrationTarget, field_errors
from cxone_eventbridge.transform import (
    JSON_CONTENT_TYPE,
    MAX_VARIABLES,
    TEXT_CONTENT_TYPE,
    DeliveryContext,
    compile_target_input,
    compile_template,
    parse_json_path,
    resolve_path,
)

# The EventBridge User Guide's example event and input paths ("Transforming target input",
# awsdocs/amazon-eventbridge-user-guide doc_source/eb-transform-target-input.md).
EC2_EVENT: dict[str, Any] = {
    "version": "0",
    "id": "7bf73129-1428-4cd3-a780-95db273d1602",
    "detail-type": "EC2 Instance State-change Notification",
    "source": "aws.ec2",
    "account": "123456789012",
    "time": "2015-11-11T21:29:54Z",
    "region": "us-east-1",
    "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],
    "detail": {"instance-id": "i-0123456789", "state": "RUNNING"},
}
PATHS = {
    "timestamp": "$.time",
    "instance": "$.detail.instance-id",
    "state": "$.detail.state",
    "resource": "$.resources[0]",
}
CONTEXT = DeliveryContext(event_id="evt-1", ingestion_time=1447277394.5, target_name="example", target_id="t-42")


def render_text(template: str, paths: dict[str, str] = PATHS, event: dict[str, Any] = EC2_EVENT) -> str:
    return compile_template(paths, template).render_text(event, CONTEXT)


def render(template: str, paths: dict[str, str] = PATHS, event: dict[str, Any] = EC2_EVENT) -> tuple[Any, str]:
    payload = compile_template(paths, template).render(event, CONTEXT)
    body = payload.body.decode()
    return (json.loads(body) if payload.content_type == JSON_CONTENT_TYPE else body), payload.content_type


def test_documented_simple_string() -> None:
    """'Simple string': the documented output, delivered as its text."""
    assert render_text('"instance <instance> is in <state>"') == '"instance i-0123456789 is in RUNNING"'
    assert render('"instance <instance> is in <state>"') == ("instance i-0123456789 is in RUNNING", TEXT_CONTENT_TYPE)


def test_documented_string_with_escaped_quotes() -> None:
    """'String with escaped quotes': the documented output; its text is what the AWS CLI note shows."""
    template = '"instance \\"<instance>\\" is in <state>"'
    assert render_text(template) == '"instance \\"i-0123456789\\" is in RUNNING"'
    assert render(template)[0] == 'instance "i-0123456789" is in RUNNING'


def test_documented_simple_json() -> None:
    """'Simple JSON': placeholders outside quotes become JSON values."""
    assert render('{\n  "instance" : <instance>,\n  "state": <state>\n}') == (
        {"instance": "i-0123456789", "state": "RUNNING"},
        JSON_CONTENT_TYPE,
    )


def test_documented_json_with_strings_and_variables() -> None:
    """'JSON with strings and variables': inside quotes, a value's text; escaped quotes stay escaped."""
    template = '{\n "instance" : <instance>,\n "state": "<state>",\n "instanceStatus": "instance \\"<instance>\\" is in <state>"\n}'
    assert render(template)[0] == {
        "instance": "i-0123456789",
        "state": "RUNNING",
        "instanceStatus": 'instance "i-0123456789" is in RUNNING',
    }


def test_documented_json_with_variables_and_static_information() -> None:
    """'JSON with a mix of variables and static information'."""
    template = '{\n  "instance" : <instance>,\n  "state": [ 9, <state>, true ],\n  "Transformed" : "Yes"\n}'
    assert render(template)[0] == {"instance": "i-0123456789", "state": [9, "RUNNING", True], "Transformed": "Yes"}


def test_documented_reserved_variables_in_json() -> None:
    """'Including reserved variables in JSON' (without ruleArn, which has no meaning here)."""
    template = (
        '{"instance" : <instance>, "state": <state>, "ruleName" : <aws.events.rule-name>, '
        '"originalEvent" : <aws.events.event>, "whole": <aws.events.event.json>}'
    )
    body, _ = render(template)
    assert body["ruleName"] == "example"
    assert body["originalEvent"] == {k: v for k, v in EC2_EVENT.items() if k != "detail"}
    assert body["whole"] == EC2_EVENT


def test_documented_reserved_variables_in_a_string() -> None:
    """'Including reserved variables in a string'."""
    assert render_text('"<aws.events.rule-name> triggered"') == '"example triggered"'


def test_documented_api_reference_examples() -> None:
    """The InputTransformer API reference's three templates, with its two variables."""
    paths = {"instance": "$.detail.instance", "status": "$.detail.status"}
    event = {"detail": {"instance": "i-1", "status": "stopped"}}
    assert render("<instance> is in state <status>", paths, event) == ("i-1 is in state stopped", TEXT_CONTENT_TYPE)
    assert render('"<instance> is in state \\"<status>\\""', paths, event)[0] == 'i-1 is in state "stopped"'
    template = '{"myInstance": <instance>,"myStatus": "<instance> is in state \\"<status>\\""}'
    assert render(template, paths, event)[0] == {"myInstance": "i-1", "myStatus": 'i-1 is in state "stopped"'}


def test_json_output_is_minified() -> None:
    """The JSON passed to the target is minified, as EventBridge documents."""
    payload = compile_template(PATHS, '{\n  "s" : [ <state> , 1 ]\n}').render(EC2_EVENT, CONTEXT)
    assert payload.body == b'{"s":["RUNNING",1]}'


def test_missing_paths_are_null_in_json_and_empty_in_strings() -> None:
    """A path that finds nothing: null where a JSON value stands, nothing inside a string or text."""
    paths = {"gone": "$.detail.nothing"}
    assert render('{"a": <gone>, "b": "x<gone>y"}', paths)[0] == {"a": None, "b": "xy"}
    assert render("[<gone>]", paths)[0] == [None]
    assert render("value: <gone>.", paths)[0] == "value: ."


def test_values_inside_strings_are_escaped_and_objects_lose_their_quotes() -> None:
    """Quotes in a value cannot break the JSON; an object inside a string reads {a:b}, as in EventBridge."""
    event = {"detail": {"note": 'say "hi"\n', "obj": {"a": "b"}, "n": 5, "flag": True}}
    paths = {"note": "$.detail.note", "obj": "$.detail.obj", "n": "$.detail.n", "flag": "$.detail.flag"}
    assert render('{"t": "<note>|<obj>|<n>|<flag>"}', paths, event)[0] == {"t": 'say "hi"\n|{a:b}|5|true'}
    assert render('{"o": <obj>, "n": <n>}', paths, event)[0] == {"o": {"a": "b"}, "n": 5}


def test_project_predefined_variables() -> None:
    """This project's own names: the event, its id, the ingestion time, the target."""
    template = '{"e": <cxeb.event>, "id": <cxeb.event-id>, "at": <cxeb.ingestion-time>, "t": "<cxeb.target-name>/<cxeb.target-id>", "aws": <aws.events.event.ingestion-time>}'
    body, _ = render(template)
    assert body == {
        "e": EC2_EVENT,
        "id": "evt-1",
        "at": "2015-11-11T21:29:54.500Z",
        "t": "example/t-42",
        "aws": "2015-11-11T21:29:54.500Z",
    }


def test_unknown_words_in_text_stay_text() -> None:
    """Inside text, a <word> that is no variable is left as it is."""
    assert render("<b>bold</b> <state>")[0] == "<b>bold</b> RUNNING"


def test_json_paths_with_indices_and_wildcards() -> None:
    """Dot notation with array indices; * gives every member or element as a list."""
    event = {"a": [{"b": 1}, {"b": 2}], "c": {"x": 1, "y": 2}}
    assert parse_json_path("$.a[1].b") == ("a", 1, "b")
    assert resolve_path(event, parse_json_path("$.a[1].b")) == 2
    assert resolve_path(event, parse_json_path("$.a[*].b")) == [1, 2]
    assert resolve_path(event, parse_json_path("$.c.*")) == [1, 2]
    assert resolve_path(event, parse_json_path("$")) == event
    assert resolve_path(event, parse_json_path("$.a[5]")) is not None  # MISSING, not an error


@pytest.mark.parametrize(
    ("paths", "template", "field", "words"),
    [
        ({}, "", "inputTransformer.inputTemplate", "must be a non-empty string"),
        ({}, "x" * 8193, "inputTransformer.inputTemplate", "the limit is 8192"),
        ({"a": "detail"}, "<a>", "inputTransformer.inputPathsMap.a", "must start with $"),
        ({"a": "$['x']"}, "<a>", "inputTransformer.inputPathsMap.a", "use dot notation"),
        ({"a": "$.x[-1]"}, "<a>", "inputTransformer.inputPathsMap.a", "not a JSON path in dot notation"),
        ({"a b": "$.x"}, "x", "inputTransformer.inputPathsMap.a b", "variable names"),
        ({"aws.x": "$.x"}, "x", "inputTransformer.inputPathsMap.aws.x", "reserved"),
        ({"cxeb.event": "$.x"}, "x", "inputTransformer.inputPathsMap.cxeb.event", "reserved"),
        ({}, '{"a": <nope>}', "inputTransformer.inputTemplate", "<nope> is not a variable"),
        ({"k": "$.k"}, "{<k>: 1}", "inputTransformer.inputTemplate", "cannot be used as an object key"),
        ({"k": "$.k"}, '{"<k>": 1}', "inputTransformer.inputTemplate", "cannot be used as an object key"),
        ({}, '{"a": "<aws.events.event>"}', "inputTransformer.inputTemplate", "only be used as a JSON value"),
        ({}, '{"a": <aws.events.rule-arn>}', "inputTransformer.inputTemplate", "no meaning here"),
        ({"k": "$.k"}, '{"a": <k>', "inputTransformer.inputTemplate", "must be a JSON object or array"),
        ({"k": "$.k"}, '"<k>" trailing', "inputTransformer.inputTemplate", "must be one JSON string"),
        ({"k": "$.k"}, '"a" ', "inputTransformer.inputTemplate", None),
    ],
)
def test_invalid_transformers_are_refused_with_their_field(
    paths: dict[str, str], template: str, field: str, words: str | None
) -> None:
    """Every invalid transformer is refused at validation, naming the field and saying why."""
    if words is None:
        compile_template(paths, template)  # a valid edge: a constant string template
        return
    with pytest.raises(InvalidTransformError) as raised:
        compile_template(paths, template)
    assert any(e.field == field and words in e.message for e in raised.value.errors), raised.value.errors


def test_at_most_100_variables() -> None:
    """inputPathsMap holds up to 100 variables, as in EventBridge."""
    paths = {f"v{i}": "$.x" for i in range(MAX_VARIABLES)}
    compile_template(paths, "ok")
    paths["one_more"] = "$.y"
    with pytest.raises(InvalidTransformError, match="invalid input transformer") as raised:
        compile_template(paths, "ok")
    assert raised.value.errors[0].message == "has 101 variables; the limit is 100"


def test_target_input_forms() -> None:
    """A constant input as given, an inputPath's value as JSON (null when absent), or the template."""
    body = json.dumps(EC2_EVENT).encode()
    constant = compile_target_input(constant='{"fixed": true}', input_path=None, transformer=None)
    assert constant is not None
    assert constant.render(body, CONTEXT).body == b'{"fixed": true}'
    part = compile_target_input(constant=None, input_path="$.detail", transformer=None)
    assert part is not None
    assert json.loads(part.render(body, CONTEXT).body) == EC2_EVENT["detail"]
    absent = compile_target_input(constant=None, input_path="$.nope", transformer=None)
    assert absent is not None
    assert absent.render(body, CONTEXT).body == b"null"
    shaped = compile_target_input(constant=None, input_path=None, transformer=(PATHS, "<state>"))
    assert shaped is not None
    assert shaped.render(body, CONTEXT).body == b"RUNNING"
    assert compile_target_input(constant=None, input_path=None, transformer=None) is None


def test_invalid_constant_and_input_path() -> None:
    """A constant that is not JSON, or a malformed inputPath, is refused with its field."""
    with pytest.raises(ValueError, match="must be JSON text"):
        compile_target_input(constant="not json", input_path=None, transformer=None)
    with pytest.raises(ValueError, match="not a JSON number"):
        compile_target_input(constant="NaN", input_path=None, transformer=None)
    with pytest.raises(ValueError, match="the limit is 8192"):
        compile_target_input(constant='"' + "x" * 8192 + '"', input_path=None, transformer=None)
    with pytest.raises(InvalidTransformError) as raised:
        compile_target_input(constant=None, input_path="detail", transformer=None)
    assert raised.value.errors[0].field == "inputPath"


def test_a_target_carries_one_input_form_with_field_paths_on_errors() -> None:
    """The model validates the forms where they are set and refuses two at once, naming them."""
    base = {"name": "t", "endpoint": "https://example.com/h"}
    target = IntegrationTarget.model_validate({**base, "inputTransformer": {"inputTemplate": '"<cxeb.event-id>"'}})
    assert target.to_wire()["inputTransformer"] == {"inputPathsMap": {}, "inputTemplate": '"<cxeb.event-id>"'}
    cases = [
        ({"input": "1", "inputPath": "$.a"}, "", "input and inputPath are exclusive"),
        (
            {"inputTransformer": {"inputPathsMap": {"a": "x"}, "inputTemplate": "<a>"}},
            "inputTransformer.inputPathsMap",
            "a: must start with $",
        ),
        (
            {"inputTransformer": {"inputTemplate": "{<k>: 1}"}},
            "inputTransformer.inputTemplate",
            "<k> is not a variable",
        ),
        (
            {"inputTransformer": {"inputPathsMap": {"k": "$.k"}, "inputTemplate": "{<k>: 1}"}},
            "inputTransformer.inputTemplate",
            "object key",
        ),
        ({"input": "{"}, "input", "must be JSON text"),
    ]
    for extra, field, words in cases:
        with pytest.raises(ValidationError) as raised:
            IntegrationTarget.model_validate({**base, **extra})
        errors = field_errors(raised.value)
        assert any(e.field == field and words in e.message for e in errors), errors


def test_long_and_deep_paths_are_refused() -> None:
    """A JSON path is bounded in length and in steps."""
    with pytest.raises(ValueError, match="the limit is 256"):
        parse_json_path("$." + "a" * 300)
    with pytest.raises(ValueError, match="the limit is 32"):
        parse_json_path("$" + ".a" * 33)
