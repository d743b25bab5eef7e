"""NeRF (Mildenhall et al., ECCV 2020): cameras, data formats, the embedded scene, fields, renderer and task."""
