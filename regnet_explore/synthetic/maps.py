"""Map rasters: one semantic prior per scene log, as the devkits' MapMask reads it."""

from __future__ import annotations

import numpy as np

from regnet_explore.synthetic.tables import Tables

MAP_RESOLUTION = 0.1  # m per pixel
ROAD_WIDTH = 14.0


def map_half_width(duration: float) -> float:
    """Half the side of the square map raster (m): scenes start at its centre, and every road and scan of a scene
    ``duration`` seconds long stays inside it."""
    return 200.0 + 11.0 * duration


def write_maps(w: Tables, roads: list[np.ndarray], size_m: float) -> None:
    """One raster per scene log from its road centre line (M, 2), 255 = drivable road, with its ``map`` record."""
    from PIL import Image, ImageDraw
    pixels = int(np.ceil(size_m / MAP_RESOLUTION))
    for index, line in enumerate(roads):
        image = Image.new("L", (pixels, pixels), 0)
        px = np.stack([line[:, 0] / MAP_RESOLUTION, pixels - line[:, 1] / MAP_RESOLUTION], -1)
        ImageDraw.Draw(image).line([tuple(p) for p in px], fill=255, width=int(ROAD_WIDTH / MAP_RESOLUTION))
        token = w.token("map", index)
        filename = f"maps/{token}.png" if w.cfg.fmt != "lyft" else f"maps/map_raster_synthetic_{index:04d}.png"
        (w.data_root / "maps").mkdir(parents=True, exist_ok=True)
        image.save(w.data_root / filename, compress_level=1)
        w.add("map", {"token": token, "filename": filename, "category": "semantic_prior",
                      "log_tokens": [w.token("log", index)]})
