"""OAS_LOG_FORMAT=json: one JSON object a line, with the socket, user and PV in context."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.config

import pytest

from ophydsite.logging_setup import (
    console_line,
    current_log_context,
    log_context,
    log_context_bind,
    logging_config,
)


@pytest.fixture
def json_log():
    """A logger wired as LOGGING wires the root one with OAS_LOG_FORMAT=json, into a buffer."""
    config = logging_config("DEBUG", "json")
    handler_config = config["handlers"]["console"]
    formatter = config["formatters"]["json"]["()"]()
    context = config["filters"]["context"]["()"]()
    assert handler_config["filters"] == ["context"] and handler_config["formatter"] == "json"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(context)
    logger = logging.getLogger("tests.json_log")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


def test_a_record_is_one_json_line_with_time_level_logger_message(json_log):
    logger, lines = json_log
    logger.warning("set of %s refused: %s", "BL:m1", "read only\nsecond line")
    [line] = lines()
    assert line["level"] == "WARNING" and line["logger"] == "tests.json_log"
    assert line["message"] == "set of BL:m1 refused: read only\nsecond line"
    assert line["time"].endswith("+00:00") and "T" in line["time"]
    assert not {"socket", "user", "pv", "args", "msg"} & set(line)  # no context bound, no record internals


def test_the_socket_user_and_pv_in_context_become_fields(json_log):
    logger, lines = json_log

    async def socket_task() -> None:
        log_context_bind(socket="pv-socket-a1b2c3", client="10.0.0.7:5123", user="alice (token ci)")
        logger.info("subscribed")
        with log_context(pv="BL:m1"):
            logger.info("set")
        await asyncio.create_task(asyncio.sleep(0))  # tasks it starts keep the binding
        await asyncio.create_task(_log(logger, "from a task of the socket"))

    asyncio.run(socket_task())
    logger.info("outside any socket")
    subscribed, set_, task, outside = lines()
    assert (subscribed["socket"], subscribed["client"], subscribed["user"]) == (
        "pv-socket-a1b2c3", "10.0.0.7:5123", "alice (token ci)")
    assert "pv" not in subscribed and set_["pv"] == "BL:m1" and set_["user"] == "alice (token ci)"
    assert task["socket"] == "pv-socket-a1b2c3" and "pv" not in task
    assert not {"socket", "user", "pv"} & set(outside)
    assert current_log_context() == {}


async def _log(logger: logging.Logger, text: str) -> None:
    logger.info(text)


def test_extra_fields_and_exceptions_are_kept(json_log):
    logger, lines = json_log
    try:
        raise RuntimeError("bridge gone")
    except RuntimeError:
        logger.exception("reload failed", extra={"settings": {"OAS_PORT": 8001, "origins": ("a", "b")}})
    [line] = lines()
    assert line["settings"] == {"OAS_PORT": 8001, "origins": ["a", "b"]}
    assert "RuntimeError: bridge gone" in line["exc_info"]


def test_plain_stays_the_default_format_and_unknown_formats_stop_the_start():
    config = logging_config("info", "plain")
    assert config["handlers"]["console"]["formatter"] == "plain"
    assert config["root"]["level"] == "INFO"
    with pytest.raises(ValueError, match="OAS_LOG_FORMAT"):
        logging_config("INFO", "yaml")


def test_a_commands_own_line_follows_the_format():
    assert console_line("bridge running; Ctrl-C to stop", "ophydsite.runbridge", "plain") == (
        "bridge running; Ctrl-C to stop")
    line = json.loads(console_line("bridge running; Ctrl-C to stop", "ophydsite.runbridge", "json"))
    assert line["message"] == "bridge running; Ctrl-C to stop" and line["logger"] == "ophydsite.runbridge"
