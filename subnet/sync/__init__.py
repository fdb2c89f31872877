"""Shared-model synchronisation: every node reaches the same bytes for each version.

aggregate.py  (lead) robust per-fragment combination -> per-entry coefficients in a Manifest.
apply.py      (everyone) fetch, verify, decode and apply a Manifest elementwise; GlobalModel.
checkpoints.py  manifests and checkpoints in the lead's store; catch-up, and reset of a bad state.
signing.py    the lead's hotkey signatures over manifests and checkpoints, checked against the chain's lead.
bounds.py     versions a window count allows (one manifest per window), so no claim runs ahead.

Determinism rule: every reduction (norms, medians) is done once by the lead and
shipped as numbers in the manifest; followers only do elementwise fp32 ops in
manifest order, so the result does not depend on thread count or SIMD width.
"""

from subnet.sync.errors import SyncError

__all__ = ["SyncError"]
