"""Image processing for camera frames, after PSI cam_server's "processing" pipeline.

Pure numpy (and scipy for the fits): no Django, sockets or EPICS, so it runs in any worker
and is tested on synthetic images. Typical use per frame::

    frame = camera_transform(raw, camera_config)        # binning, mirror, rotate
    result = process(frame, processing_config, background,
                     calibration=camera_config.axis_calibration())
"""

from .camera import AxisCalibration, CameraCalibration, CameraConfig, camera_transform
from .config import GoodRegionConfig, ProcessingConfig, RegionOfInterest, SlicesConfig
from .fit import GaussFit, gauss, gauss_fit
from .pipeline import collect_background, process

__all__ = [
    "AxisCalibration", "CameraCalibration", "CameraConfig", "GaussFit", "GoodRegionConfig", "ProcessingConfig",
    "RegionOfInterest", "SlicesConfig", "camera_transform", "collect_background", "gauss", "gauss_fit", "process",
]
