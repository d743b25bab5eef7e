"""Event-camera data: formats, windowing and representations (voxel grid, histograms)."""
