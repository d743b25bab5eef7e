"""torchrepro: reproduce computer-vision papers end to end with one command, then scale them with DDP."""

__version__ = "0.1.0"
