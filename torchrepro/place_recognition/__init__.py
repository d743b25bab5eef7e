"""Event-camera visual place recognition (ResNet34 + NetVLAD on event windows) and its simulated event drive."""
