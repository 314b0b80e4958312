import json

from devices.core import wire

VALUE = {"type": "pv.value", "pv": "IOC:m1", "value": "[1.5,null]", "count": 2, "timestamp": 12.5,
         "severity": 1, "connected": True, "read_access": True, "write_access": True}
META = {"type": "pv.meta", "pv": "IOC:m1", "meta": {"connected": True, "write_access": True, "units": "mm"}}


def test_pv_value_text_matches_ophyd_websocket_shape():
    msg = json.loads(wire.pv_value_text(VALUE, True))
    assert msg == {"pv": "IOC:m1", "value": [1.5, None], "timestamp": 12.5, "connected": True,
                   "read_access": True, "write_access": True, "severity": 1}
    assert json.loads(wire.pv_value_text(VALUE, False))["write_access"] is False


def test_meta_text_carries_sub_type_obj_and_pv():
    msg = json.loads(wire.pv_meta_text(META, False))
    assert msg["sub_type"] == "meta" and msg["obj"] == "IOC:m1" and msg["pv"] == "IOC:m1"
    assert msg["write_access"] is False
    assert META["meta"]["write_access"] is True  # the shared message is not modified


def test_pycaserver_texts():
    mon = json.loads(wire.monitor_text(VALUE, "mm"))
    assert mon["msg_type"] == "monitor" and mon["pvname"] == "IOC:m1"
    assert mon["value"] == [1.5, None] and mon["count"] == 2 and mon["units"] == "mm"
    assert json.loads(wire.connection_text("A:b", False)) == {"msg_type": "connection", "pvname": "A:b",
                                                              "conn": False}
