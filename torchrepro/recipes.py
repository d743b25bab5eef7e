"""The explicit table of recipes: importing a system's ``task`` module registers it.

``core`` never imports systems; the CLI imports this module. A new recipe adds one line here.
"""

import torchrepro.driving.task  # noqa: F401  (registers "driving")
