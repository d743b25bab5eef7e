"""LipNet lip reading (Assael et al., "LipNet: End-to-End Sentence-level Lipreading", 2016) on GRID."""
