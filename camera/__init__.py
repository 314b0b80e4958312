"""Camera app: area-detector frames, their processing (cam_server's pipeline) and their delivery."""
