"""Frame Flexible Network (Zhang et al., CVPR 2023): one video model for several frame counts."""
