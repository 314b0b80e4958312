import pytest

from devices.core.requests import (
    DEVICE_WORDS,
    Limits,
    ProtocolError,
    decode_frame,
    parse_pv_request,
    parse_request,
)

LIMITS = Limits(max_message_bytes=1000, max_names_per_request=5, max_name_length=40, set_timeout_max_s=60)


def parse(message):
    return parse_pv_request(message, LIMITS)


def error_of(message):
    with pytest.raises(ProtocolError) as info:
        parse(message)
    return info.value


def test_single_and_multi_names():
    assert parse({"action": "subscribe", "pv": "A:b"}).names == ["A:b"]
    request = parse({"action": "subscribe", "pvs": ["A:b", "A:c", "A:b"], "id": 7})
    assert request.names == ["A:b", "A:c"]
    assert request.request_id == 7


def test_frames_that_are_not_json_objects():
    with pytest.raises(ProtocolError) as info:
        decode_frame("not json", None, LIMITS)
    assert info.value.code == "bad_json"
    with pytest.raises(ProtocolError) as info:
        decode_frame('{"a": NaN}', None, LIMITS)
    assert info.value.code == "bad_json"
    with pytest.raises(ProtocolError) as info:
        decode_frame(None, b"\x00\x01", LIMITS)
    assert info.value.code == "binary_frame"
    assert error_of([1, 2]).code == "not_object"
    assert error_of("IOC:m1").code == "not_object"


def test_too_large_names_the_limit():
    with pytest.raises(ProtocolError) as info:
        decode_frame('{"x": "' + "a" * 2000 + '"}', None, LIMITS)
    assert info.value.code == "too_large"
    assert "1000" in info.value.message


def test_action_errors():
    assert error_of({"pv": "A"}).code == "missing_field"
    assert error_of({"action": 3, "pv": "A"}).code == "bad_field"
    exc = error_of({"action": "fly", "id": "x"})
    assert exc.code == "unknown_action" and exc.request_id == "x"
    assert "subscribeSafely" in exc.message


def test_name_errors():
    assert error_of({"action": "subscribe"}).code == "missing_field"
    assert error_of({"action": "subscribe", "pv": 5}).code == "bad_field"
    assert error_of({"action": "subscribe", "pvs": "A"}).code == "bad_field"
    assert error_of({"action": "subscribe", "pvs": []}).code == "bad_field"
    assert error_of({"action": "subscribe", "pvs": ["A", 3]}).code == "bad_field"
    assert error_of({"action": "subscribe", "pv": "A", "pvs": ["B"]}).code == "bad_field"
    assert error_of({"action": "subscribe", "pvs": [f"P{i}" for i in range(6)]}).code == "too_many"


def test_absurd_names_are_reported_per_name():
    request = parse({"action": "subscribe", "pvs": ["", "x" * 41, "a b", "ok:1", "new\nline"]})
    assert request.names == ["ok:1"]
    assert [name for name, _ in request.invalid] == ["", "x" * 41, "a b", "new\nline"]


def test_set_validation():
    request = parse({"action": "set", "pv": "A", "value": 5, "timeout": 2})
    assert (request.value, request.timeout) == (5, 2.0)
    assert error_of({"action": "set", "pv": "A"}).code == "missing_field"
    assert error_of({"action": "set", "pv": "A", "value": None}).code == "bad_field"
    assert error_of({"action": "set", "pvs": ["A"], "value": 1}).code == "bad_field"
    assert error_of({"action": "set", "pv": "A", "value": 1, "timeout": "2"}).code == "bad_field"
    assert error_of({"action": "set", "pv": "A", "value": 1, "timeout": 0}).code == "bad_field"
    assert error_of({"action": "set", "pv": "A", "value": 1, "timeout": 1e9}).code == "bad_field"
    assert error_of({"action": "set", "pv": "", "value": 1}).code == "bad_name"


def test_bad_ids():
    assert error_of({"action": "refresh", "id": {"a": 1}}).code == "bad_field"
    assert error_of({"action": "refresh", "id": True}).code == "bad_field"
    assert parse({"action": "refresh", "id": "abc"}).request_id == "abc"


def test_options_names_no_target_and_takes_a_batch_window():
    request = parse({"action": "options", "batch_ms": 20, "id": 4})
    assert (request.action, request.batch_ms, request.request_id, request.names) == ("options", 20, 4, [])
    assert parse({"action": "options", "batch_ms": 0}).batch_ms == 0  # off again
    assert parse({"action": "options", "batch_ms": 12.5}).batch_ms == 12.5
    assert parse({"action": "options", "batch_ms": 1000}).batch_ms == 1000
    assert parse({"action": "options"}).batch_ms is None  # a question: which options hold
    device = parse_request({"action": "options", "batch_ms": 50}, LIMITS, DEVICE_WORDS)
    assert device.batch_ms == 50


@pytest.mark.parametrize("raw", [True, False, "20", [20], {"ms": 20}, -1, -0.5, 1000.5, 1001, 10**400,
                                 float("inf"), float("nan")])
def test_options_refuses_a_window_that_is_not_0_to_1000_ms(raw):
    exc = error_of({"action": "options", "batch_ms": raw, "id": "o"})
    assert (exc.code, exc.action, exc.request_id) == ("bad_field", "options", "o")
    assert "'batch_ms'" in exc.message and ("1000" in exc.message or "number" in exc.message)


def test_options_names_the_fields_it_does_not_know():
    exc = error_of({"action": "options", "batch_ms": 20, "batchMs": 20, "pv": "A"})
    assert (exc.code, exc.action) == ("bad_field", "options")
    assert "'batchMs'" in exc.message and "'pv'" in exc.message and "batch_ms" in exc.message


def test_options_is_listed_among_the_actions():
    assert "options" in error_of({"action": "fly"}).message
