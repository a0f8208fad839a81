"""What every hwnas package needs and none owns: errors, the plug-in registry, the strict
config parser, device budgets, atomic file writes and progress reporting.

Imports point one way: ``core`` imports no hwnas package; ``search_spaces``,
``lookup_tables``, ``evaluators`` and ``nas`` all import it.
"""

from core.torchvision_cpu import make_importable as _make_torchvision_importable

_make_torchvision_importable()  # before anything imports torchvision (see core/torchvision_cpu.py)
