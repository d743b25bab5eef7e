"""The explicit table of recipes: importing a system's ``task`` module registers it.

``core`` never imports systems; the CLI imports this module. A new recipe adds one line here.
"""

import torchrepro.driving.task  # noqa: F401  (registers "driving")
import torchrepro.place_recognition.task  # noqa: F401  (registers "vpr_event")
import torchrepro.reid.task  # noqa: F401  (registers "reid")
import torchrepro.reid.tools  # noqa: F401  (registers the reid-ablation and reid-textures tools)
