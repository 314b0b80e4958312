"""The camera REST API and stored pipelines on the socket, with a configured simulation camera
(no IOC): configuration with validation, geometry after rotation, one PNG, background
collection, a pipeline subtracting it, and every error answered as JSON with a 4xx/5xx."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.test import AsyncClient
from PIL import Image

from tests.system_tests.test_camera_socket import Viewer

pytestmark = [pytest.mark.system, pytest.mark.timeout(120), pytest.mark.django_db(transaction=True)]
API = "/api/v1"
JSON = {"content_type": "application/json"}


async def test_configure_a_camera_read_its_geometry_and_image_and_collect_a_background():
    http = AsyncClient()
    assert "sim" in (await http.get(f"{API}/cameras")).json()["cameras"]
    bad = await http.put(f"{API}/cameras/beam/config", {"source": "simulation", "transform": {"mirror_x": "yes"}},
                         **JSON)
    assert bad.status_code == 400 and "mirror_x" in bad.json()["error"]
    unknown_field = await http.put(f"{API}/cameras/beam/config", {"colour": "red"}, **JSON)
    assert unknown_field.status_code == 400 and "colour" in unknown_field.json()["error"]
    made = await http.put(f"{API}/cameras/beam/config", {"source": "simulation", "sim_width": 160,
                                                         "sim_height": 120, "sim_rate_hz": 20,
                                                         "transform": {"rotate": 1}}, **JSON)
    assert made.status_code == 200, made.json()
    assert (await http.get(f"{API}/cameras/beam/config")).json()["config"]["transform"] == {"rotate": 1}
    assert "beam" in (await http.get(f"{API}/cameras")).json()["cameras"]

    geometry = (await http.get(f"{API}/cameras/beam/geometry")).json()
    assert geometry["geometry"] == [120, 160]  # rotated by 90°: width and height swap
    png = await http.get(f"{API}/cameras/beam/image")
    assert png.status_code == 200 and png["Content-Type"] == "image/png"
    picture = Image.open(io.BytesIO(png.content))
    assert picture.size == (120, 160) and picture.mode == "L"

    assert (await http.get(f"{API}/cameras/beam/background")).status_code == 404
    collected = await http.post(f"{API}/cameras/beam/background?n_images=3")
    assert collected.status_code == 200, collected.json()
    background_id = collected.json()["background_id"]
    latest = (await http.get(f"{API}/cameras/beam/background")).json()
    assert latest["background_id"] == background_id and latest["n_images"] == 3
    refused = await http.delete(f"{API}/cameras/beam/config")
    assert refused.status_code == 409 and refused.json()["code"] == "has_backgrounds"

    from asgiref.sync import sync_to_async

    from camera.models import Background

    stored = await sync_to_async(Background.objects.get)(background_id=background_id)
    array = await sync_to_async(stored.array)()
    assert array.shape == (160, 120) and array.dtype == np.float32 and array.max() > 1000  # a beam averaged in


async def test_a_stored_pipeline_on_the_socket_and_inline_processing():
    http = AsyncClient()
    await http.put(f"{API}/cameras/lab/config", {"source": "simulation", "sim_width": 320, "sim_height": 240,
                                                 "sim_rate_hz": 10}, **JSON)
    missing_bg = await http.put(f"{API}/pipelines/lab-bg/config", {"camera": "lab", "config": {
        "image_background_enable": True}}, **JSON)
    assert missing_bg.status_code == 200  # accepted; the socket says what is missing when it is used
    bad = await http.put(f"{API}/pipelines/lab-bad/config", {"camera": "lab", "config": {
        "image_slices": {"orientation": "diagonal"}}}, **JSON)
    assert bad.status_code == 400 and "orientation" in bad.json()["error"]
    no_camera = await http.put(f"{API}/pipelines/x/config", {"camera": "nope", "config": {}}, **JSON)
    assert no_camera.status_code == 400
    assert (await http.get(f"{API}/pipelines/x/config")).status_code == 404
    ok = await http.put(f"{API}/pipelines/lab-fit/config", {"camera": "lab", "config": {
        "image_good_region": {"threshold": 0.3, "gfscale": 1.8}}}, **JSON)
    assert ok.status_code == 200 and "lab-fit" in (await http.get(f"{API}/pipelines")).json()["pipelines"]

    async with Viewer() as viewer:
        await viewer.send({"camera": "lab", "processing": "lab-bg"})
        error = await viewer.json(lambda m: "error" in m)
        assert error["code"] == "bad_processing" and "none yet" in error["error"], error
        await viewer.send({"camera": "lab", "processing": "lab-fit", "max_fps": 5})
        result = await viewer.json(lambda m: "processing" in m, timeout=15)
        found = result["processing"]
        assert found["pipeline"] == "lab-fit" and isinstance(result["frame"], int)
        assert 0 < found["x_fit_mean"] < 320 and 0 < found["y_fit_mean"] < 240
        assert found["x_fit_standard_deviation"] == pytest.approx(25.0, rel=0.1)  # the simulation's sigma
        assert found["good_region"] is not None
        await viewer.send({"processing": False})
        assert (await viewer.json(lambda m: m.get("processing") == "off"))

    async with Viewer() as inline:
        await inline.send({"camera": "sim:200x150", "processing": {"image_threshold": 2000}})
        result = await inline.json(lambda m: "processing" in m, timeout=15)
        assert result["processing"]["processing_parameters"]["image_threshold"] == 2000
        await inline.send({"processing": {"image_region_of_interest": "all"}})
        assert (await inline.json(lambda m: "error" in m))["code"] == "bad_processing"


async def test_camera_api_errors_are_json():
    http = AsyncClient()
    for path in ("/cameras/ghost/config", "/cameras/ghost/geometry", "/cameras/ghost/background",
                 "/pipelines/ghost/config"):
        reply = await http.get(API + path)
        assert reply.status_code == 404 and reply.json()["code"], path
    assert (await http.get(f"{API}/cameras/bad%20name/config")).status_code == 422
    builtin = await http.put(f"{API}/cameras/sim/config", {"source": "simulation"}, **JSON)
    assert builtin.status_code == 400 and builtin.json()["code"] == "builtin_camera"
    not_configured = await http.post(f"{API}/cameras/sim/background")
    assert not_configured.status_code == 404  # backgrounds belong to configured cameras


async def test_camera_reads_follow_the_policy_and_the_array_pv_rules(ad_ioc):
    from dataclasses import replace

    from asgiref.sync import sync_to_async
    from django.conf import settings

    from devices.access import db as access_db
    from devices.access.models import AccessRule

    http = AsyncClient()
    made = await http.put(f"{API}/cameras/adcam/config", {"source": "area_detector",
                                                          "array_pv": "AD_UInt8:image1:ArrayData"}, **JSON)
    assert made.status_code == 200, made.json()
    await sync_to_async(AccessRule.objects.create)(name="hide-ad", pattern="AD_*", level=0)
    access_db.DB_RULES._cached = None
    hidden = await http.get(f"{API}/cameras/adcam/geometry?timeout=1")
    assert hidden.status_code == 401 and "AD_UInt8:image1:ArrayData" in hidden.json()["error"]
    assert (await http.get(f"{API}/cameras/adcam/image?timeout=1")).status_code == 401
    async with Viewer() as viewer:
        await viewer.send({"camera": "adcam"})
        assert (await viewer.json(lambda m: "error" in m))["code"] == "forbidden"
    original = settings.OAS
    settings.OAS = replace(original, auth_required=True)
    try:
        for path in ("/cameras", "/cameras/sim/config", "/pipelines", "/cameras/sim/geometry"):
            reply = await http.get(API + path)
            assert reply.status_code == 401 and reply.json()["code"] == "unauthenticated", path
    finally:
        settings.OAS = original
        await sync_to_async(AccessRule.objects.filter(name="hide-ad").delete)()
        access_db.DB_RULES._cached = None  # no later test reads this rule from the cache
