"""Shared video layer: TSN segment sampling, frames of one video (folder or file), data set layouts.

Used by the Frame Flexible Network recipe (Something-Something V2 with TSM) and LipNet (GRID ``.mpg``).
"""

from torchrepro.video.frames import VIDEO_EXTENSIONS, is_video_file, list_frames, natural_key, num_frames, read_frames
from torchrepro.video.layouts import (
    VideoItem,
    read_class_list,
    read_frames_csv,
    read_sthv2_classes,
    read_sthv2_split,
    sthv2_class_name,
)
from torchrepro.video.sampling import is_short, segment_bounds, segment_indices, warn_short_once

__all__ = [
    "VIDEO_EXTENSIONS", "VideoItem", "is_short", "is_video_file", "list_frames", "natural_key", "num_frames",
    "read_class_list", "read_frames", "read_frames_csv", "read_sthv2_classes", "read_sthv2_split",
    "segment_bounds", "segment_indices", "sthv2_class_name", "warn_short_once",
]
