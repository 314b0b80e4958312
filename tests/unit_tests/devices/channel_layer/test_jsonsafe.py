import json
import math

import numpy as np

from devices.channel_layer.jsonsafe import to_jsonable, value_json


def test_nan_and_infinity_become_null():
    assert value_json(math.nan) == "null"
    assert value_json(float("inf")) == "null"
    assert json.loads(value_json(np.array([1.0, np.nan, -np.inf, 2.5]))) == [1.0, None, None, 2.5]


def test_numpy_scalars_and_arrays():
    assert value_json(np.float32(1.5)) == "1.5"
    assert json.loads(value_json(np.arange(5, dtype=np.int16))) == [0, 1, 2, 3, 4]
    assert json.loads(value_json(np.array([3], dtype=np.int32))) == [3]


def test_char_array_with_text_becomes_string():
    codes = np.frombuffer(b"hello world\x00\x00\x00", dtype=np.uint8)
    assert to_jsonable(codes, char_array=True) == "hello world"
    signed = np.array([104, 105, 0], dtype=np.int8)
    assert to_jsonable(signed, char_array=True) == "hi"


def test_char_array_with_binary_data_stays_numbers():
    codes = np.array([1, 2, 200, 0, 5], dtype=np.uint8)
    assert to_jsonable(codes, char_array=True) == [1, 2, 200, 0, 5]
    # int waveforms are never turned into control-character strings
    assert to_jsonable(np.array([1, 2, 3], dtype=np.int32)) == [1, 2, 3]


def test_utf8_text_survives():
    codes = np.frombuffer("Temperatur 20 °C\x00".encode(), dtype=np.uint8)
    assert to_jsonable(codes, char_array=True) == "Temperatur 20 °C"


def test_output_is_strict_json():
    text = value_json({"a": [1, None]} if False else [1.0, float("nan")])
    json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))


def test_fast_array_path_matches_the_general_encoder():
    for array in (np.linspace(-1e6, 1e6, 1001), np.arange(-50, 50, dtype=np.int32),
                  np.arange(10, dtype=np.uint16)[::2], np.array([], dtype=np.float64)):
        assert json.loads(value_json(array)) == to_jsonable(array)
    # float32 is written with float32's shortest form (0.1, not 0.10000000149011612): same value
    single = np.array([0.1, 1e-30, 3.0e38, -2.5], dtype=np.float32)
    assert np.array_equal(np.array(json.loads(value_json(single)), dtype=np.float32), single)
    assert value_json(single).startswith("[0.1,")
    assert value_json(np.array([1.0, np.nan, np.inf])) == "[1.0,null,null]"
