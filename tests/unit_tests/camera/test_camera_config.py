"""ProcessingConfig and CameraConfig parsing: defaults, round trips, and one test per error path.

Every error is a ValueError whose message starts with the offending key, for the REST layer's 400.
"""

from __future__ import annotations

import math

import pytest

from camera.processing import (
    CameraCalibration,
    CameraConfig,
    GoodRegionConfig,
    ProcessingConfig,
    RegionOfInterest,
    SlicesConfig,
)


def test_empty_processing_config_disables_everything():
    cfg = ProcessingConfig.from_dict({})
    assert cfg == ProcessingConfig()
    assert cfg.image_background_enable is False and cfg.image_threshold is None
    assert cfg.image_region_of_interest is None and cfg.image_good_region is None and cfg.image_slices is None


def test_processing_config_with_cam_server_defaults():
    cfg = ProcessingConfig.from_dict({"image_good_region": {}, "image_slices": {}})
    assert cfg.image_good_region == GoodRegionConfig(threshold=0.3, gfscale=1.8)
    assert cfg.image_slices == SlicesConfig(number_of_slices=1, scale=2.0, orientation="vertical")


def test_cam_server_example_parses_and_round_trips():
    example = {"image_background_enable": False, "image_threshold": 0.5, "image_region_of_interest": [0, 100, 0, 100],
               "image_good_region": {"threshold": 0.9, "gfscale": 3},
               "image_slices": {"number_of_slices": 1, "scale": 1.0, "orientation": "vertical"}}
    cfg = ProcessingConfig.from_dict(example, image_shape=(100, 100))
    assert cfg.image_region_of_interest == RegionOfInterest(x_offset=0, width=100, y_offset=0, height=100)
    assert cfg.image_good_region == GoodRegionConfig(threshold=0.9, gfscale=3.0)
    assert ProcessingConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.to_dict() == {**example, "image_good_region": {"threshold": 0.9, "gfscale": 3.0}}


def test_null_disables_a_feature():
    cfg = ProcessingConfig.from_dict({"image_threshold": None, "image_region_of_interest": None,
                                      "image_good_region": None, "image_slices": None})
    assert cfg == ProcessingConfig()


def test_roi_in_cam_server_order_checked_against_the_image():
    cfg = ProcessingConfig.from_dict({"image_region_of_interest": [10, 20, 30, 40]}, image_shape=(70, 30))
    roi = cfg.image_region_of_interest
    assert (roi.x_offset, roi.width, roi.y_offset, roi.height) == (10, 20, 30, 40)
    with pytest.raises(ValueError, match="^image_region_of_interest: .* outside the 29x70 image"):
        ProcessingConfig.from_dict({"image_region_of_interest": [10, 20, 30, 40]}, image_shape=(70, 29))
    with pytest.raises(ValueError, match="^image_region_of_interest"):
        ProcessingConfig.from_dict({"image_region_of_interest": [10, 20, 30, 40]}, image_shape=(69, 30))


@pytest.mark.parametrize(("data", "key"), [
    ({"camera_name": "simulation"}, "camera_name"),
    ({"image_treshold": 3}, "image_treshold"),
    ({"image_background_enable": "yes"}, "image_background_enable"),
    ({"image_background_enable": "passive"}, "image_background_enable"),
    ({"image_background_enable": 1}, "image_background_enable"),
    ({"image_threshold": "5"}, "image_threshold"),
    ({"image_threshold": True}, "image_threshold"),
    ({"image_threshold": math.nan}, "image_threshold"),
    ({"image_threshold": math.inf}, "image_threshold"),
    ({"image_region_of_interest": [0, 10, 0]}, "image_region_of_interest"),
    ({"image_region_of_interest": "0,10,0,10"}, "image_region_of_interest"),
    ({"image_region_of_interest": []}, "image_region_of_interest"),
    ({"image_region_of_interest": [-1, 10, 0, 10]}, r"image_region_of_interest\[0\] \(x_offset\)"),
    ({"image_region_of_interest": [0, 0, 0, 10]}, r"image_region_of_interest\[1\] \(width\)"),
    ({"image_region_of_interest": [0, 10.5, 0, 10]}, r"image_region_of_interest\[1\] \(width\)"),
    ({"image_region_of_interest": [0, 10, -3, 10]}, r"image_region_of_interest\[2\] \(y_offset\)"),
    ({"image_region_of_interest": [0, 10, 0, -5]}, r"image_region_of_interest\[3\] \(height\)"),
    ({"image_region_of_interest": [0, 10, 0, True]}, r"image_region_of_interest\[3\] \(height\)"),
    ({"image_good_region": 0.3}, "image_good_region"),
    ({"image_good_region": {"threshold": 1.5}}, "image_good_region.threshold"),
    ({"image_good_region": {"threshold": -0.1}}, "image_good_region.threshold"),
    ({"image_good_region": {"threshold": "0.3"}}, "image_good_region.threshold"),
    ({"image_good_region": {"gfscale": 0}}, "image_good_region.gfscale"),
    ({"image_good_region": {"gfscale": -1.8}}, "image_good_region.gfscale"),
    ({"image_good_region": {"gfscale": 1.8, "scale": 2}}, "image_good_region.scale"),
    ({"image_slices": [1, 2.0, "vertical"]}, "image_slices"),
    ({"image_slices": {"number_of_slices": 0}}, "image_slices.number_of_slices"),
    ({"image_slices": {"number_of_slices": 2.5}}, "image_slices.number_of_slices"),
    ({"image_slices": {"number_of_slices": 101}}, "image_slices.number_of_slices"),
    ({"image_slices": {"scale": 0}}, "image_slices.scale"),
    ({"image_slices": {"scale": "2"}}, "image_slices.scale"),
    ({"image_slices": {"orientation": "diagonal"}}, "image_slices.orientation"),
    ({"image_slices": {"orientation": ["vertical"]}}, "image_slices.orientation"),
    ({"image_slices": {"slices": 3}}, "image_slices.slices"),
])
def test_processing_config_errors_name_the_key(data, key):
    with pytest.raises(ValueError, match=f"^{key}"):
        ProcessingConfig.from_dict(data)


@pytest.mark.parametrize("data", [[], "x", None, 3, {1: True}])
def test_processing_config_must_be_an_object(data):
    with pytest.raises(ValueError, match="^processing config"):
        ProcessingConfig.from_dict(data)


def test_camera_config_defaults_and_round_trip():
    assert CameraConfig.from_dict({}) == CameraConfig()
    cfg = CameraConfig.from_dict({"mirror_x": True, "mirror_y": False, "rotate": 4, "binning_x": 2, "binning_y": 3,
                                  "binning_mean": True,
                                  "camera_calibration": {"reference_marker": [0, 0, 100, 100],
                                                         "reference_marker_width": 100.0,
                                                         "reference_marker_height": 100.0,
                                                         "angle_horizontal": 0.0, "angle_vertical": 0.0}})
    assert cfg.camera_calibration == CameraCalibration()
    assert CameraConfig.from_dict(cfg.to_dict()) == cfg


def test_camera_calibration_reduces_to_offset_and_scale():
    calibration = CameraCalibration(reference_marker=(10, 20, 110, 70), reference_marker_width=50.0,
                                    reference_marker_height=25.0, angle_horizontal=60.0).axis_calibration()
    # pixel size x = 50 / 100 * cos(60 deg) = 0.25, origin x = 60; y: 25 / 50 = 0.5, origin y = 45.
    assert calibration.x_scale == pytest.approx(-0.25) and calibration.x_offset == pytest.approx(15.0)
    assert calibration.y_scale == pytest.approx(-0.5) and calibration.y_offset == pytest.approx(22.5)


@pytest.mark.parametrize(("data", "key"), [
    ({"name": "simulation"}, "name"),
    ({"mirror_x": 1}, "mirror_x"),
    ({"mirror_y": "false"}, "mirror_y"),
    ({"rotate": 1.5}, "rotate"),
    ({"rotate": "1"}, "rotate"),
    ({"binning_x": 0}, "binning_x"),
    ({"binning_y": 65}, "binning_y"),
    ({"binning_mean": None}, "binning_mean"),
    ({"camera_calibration": [0, 0, 100, 100]}, "camera_calibration"),
    ({"camera_calibration": {"reference_marker": [0, 0, 100]}}, "camera_calibration.reference_marker"),
    ({"camera_calibration": {"reference_marker": [0, 0, 0, 100]}}, "camera_calibration.reference_marker"),
    ({"camera_calibration": {"reference_marker": [0, 0, 100, 0.5]}}, r"camera_calibration.reference_marker\[3\]"),
    ({"camera_calibration": {"reference_marker_width": 0}}, "camera_calibration.reference_marker_width"),
    ({"camera_calibration": {"reference_marker_height": -1}}, "camera_calibration.reference_marker_height"),
    ({"camera_calibration": {"angle_horizontal": 90}}, "camera_calibration.angle_horizontal"),
    ({"camera_calibration": {"angle_vertical": "0"}}, "camera_calibration.angle_vertical"),
    ({"camera_calibration": {"origin": [0, 0]}}, "camera_calibration.origin"),
])
def test_camera_config_errors_name_the_key(data, key):
    with pytest.raises(ValueError, match=f"^{key}"):
        CameraConfig.from_dict(data)


def test_camera_config_must_be_an_object():
    with pytest.raises(ValueError, match="^camera config"):
        CameraConfig.from_dict([("mirror_x", True)])
