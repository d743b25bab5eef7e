"""Procedural-rendering pieces shared by the synthetic data generators: colours, noise and camera response
(``raster``), and the driver's-view road scene (``road``: camera over a flat ground plane, sky, road, shadows,
cars, roadside objects) that the driving-direction and detection generators both draw on."""
