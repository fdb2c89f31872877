"""Tessera: a Bittensor subnet for decentralized LLM training.

Miners train fragments of one shared transformer and publish compressed,
signed pseudo-gradients; validators score them by held-out loss improvement,
run an Apex-style competition and set weights on chain.
"""

__version__ = "0.1.0"

# Weights version key sent with every set_weights call. Bump the minor part
# whenever scoring changes in a way validators must agree on.
SPEC_VERSION = 100
