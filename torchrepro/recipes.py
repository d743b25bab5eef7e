"""The explicit table of recipes: importing a system's ``config`` module registers it (and its tools).

``core`` never imports systems; the CLI imports this module. A new recipe adds one line here. The config modules
hold schemas and registrations only; each recipe's ``task`` module (torch, Lightning) is imported when a command
builds the recipe.
"""

import torchrepro.detection.config  # noqa: F401  (registers "detection")
import torchrepro.driving.config  # noqa: F401  (registers "driving")
import torchrepro.frame_flexible.config  # noqa: F401  (registers "ffn" and the ffn-table tool)
import torchrepro.lipreading.config  # noqa: F401  (registers "lipnet" and the lipread tool)
import torchrepro.nerf.config  # noqa: F401  (registers "nerf" and the nerf-render tool)
import torchrepro.place_recognition.config  # noqa: F401  (registers "vpr_event")
import torchrepro.reid.config  # noqa: F401  (registers "reid" and the reid-ablation / reid-textures tools)
import torchrepro.simclr.config  # noqa: F401  (registers "simclr")
import torchrepro.superpoint.config  # noqa: F401  (registers "magicpoint" and "superpoint")
