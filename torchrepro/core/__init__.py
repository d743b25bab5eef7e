"""The engine every recipe stands on: config, registry, Lightning trainer factory, DDP helpers, run dirs."""
