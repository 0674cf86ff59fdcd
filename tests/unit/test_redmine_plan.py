"""The redmine adapter's pure parts: rendering an event into an issue (the sandbox, the
permanent failures a template can cause) and summaries that never carry the API key."""

from __future__ import annotations

import string
import uuid

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from courier.adapters.base import DeliveryRequest
from courier.adapters.redmine import _error_text, _result, plan
from courier.ticket_templates import TemplateFailed, check, event_time

CONFIG = {
    "correlation_key": "{{ payload.incident_id }}",
    "subject": "[{{ payload.severity | default('info') }}] {{ payload.title }}",
    "description": "{{ payload | tojson }}",
    "note": "{{ type }} at {{ timestamp }}",
    "priority_id": "{{ 5 if payload.severity == 'critical' else '' }}",
    "custom_fields": {"3": "{{ payload.host }}"},
    "resolving_event_types": ["incident.resolved"],
}
EVENT_ID = "0192f0c4-8a00-7000-8000-000000000000"


def _plan(event_type: str, payload: object, **config: object) -> object:
    return plan(event_type, EVENT_ID, orjson.dumps(payload), {**CONFIG, **config})


def test_an_event_renders_into_an_issue() -> None:
    payload = {"incident_id": "INC-7", "title": "db down", "severity": "critical", "host": "db1"}
    rendered = plan("incident.resolved", EVENT_ID, orjson.dumps(payload), CONFIG)
    assert rendered.key == "INC-7"
    assert rendered.subject == "[critical] db down"
    description, marker = rendered.description.split("\n\n")
    assert orjson.loads(description) == payload
    assert marker == f"courier event: {EVENT_ID}"
    assert rendered.note == f"incident.resolved at {event_time(EVENT_ID)}\n\n{marker}"
    assert rendered.priority_id == 5
    assert rendered.custom_fields == ((3, "db1"),)
    assert rendered.closes
    assert event_time(EVENT_ID).startswith("2024-11-")


@pytest.mark.parametrize(
    ("payload", "config", "reason"),
    [
        ({"title": "x"}, {}, "no correlation key"),
        (
            {"title": "x"},
            {"correlation_key": "{{ payload.a.b }}"},
            "correlation_key template failed",
        ),
        ({"incident_id": "", "title": "x"}, {}, "no correlation key"),
        ({"incident_id": "k", "title": "  "}, {"subject": "{{ payload.title }}"}, "empty subject"),
        ({"incident_id": "k", "title": "t"}, {"priority_id": "high"}, "not an id"),
        ({"incident_id": "k" * 300, "title": "t"}, {}, "longer than 255"),
        ({"incident_id": "k", "title": "t"}, {"subject": "{{ ''.__class__ }}"}, "subject"),
        ({"incident_id": "k", "title": "t"}, {"note": "{{ 'x' * 100000 }}"}, "more than"),
    ],
)
def test_what_a_template_cannot_render_is_a_clear_permanent_reason(
    payload: object, config: dict[str, object], reason: str
) -> None:
    with pytest.raises(TemplateFailed) as caught:
        _plan("incident.opened", payload, **config)
    assert reason in str(caught.value)


def test_the_sandbox_refuses_internals() -> None:
    with pytest.raises(TemplateFailed, match=r"SecurityError|undefined"):
        _plan("t", {"incident_id": "k"}, subject="{{ payload.__class__.__mro__ }}")


def test_a_template_that_does_not_compile_is_refused_with_its_line() -> None:
    with pytest.raises(ValueError, match=r"TemplateSyntaxError.*line 2"):
        check("ok\n{{ broken ")


KEY_ALPHABET = string.ascii_letters + string.digits


@given(
    key=st.text(KEY_ALPHABET, min_size=12, max_size=40),
    status=st.sampled_from([401, 403, 404, 422, 429, 500, 503]),
    form=st.sampled_from(["errors", "text", "header"]),
    padding=st.integers(0, 600),
)
def test_a_summary_never_carries_the_api_key(
    key: str, status: int, form: str, padding: int
) -> None:
    echoed = "." * padding + f"X-Redmine-API-Key: {key} key={key} {key}"
    body = orjson.dumps({"errors": [echoed, key]}) if form == "errors" else echoed.encode()
    request = DeliveryRequest(
        url="",
        event_id=str(uuid.uuid4()),
        body=b"{}",
        secrets=(),
        timeout_s=1.0,
        kind="redmine",
        config={"api_key": key},
        config_secrets=(key,),
    )
    text = _error_text(status, "the create", body)
    result = _result(request, 0.0, "permanent_failure", text, status)
    assert result.error_summary is not None
    assert key not in result.error_summary
    assert result.error_summary.startswith(f"Redmine answered {status} to the create")
