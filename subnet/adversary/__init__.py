"""Adversarial miners for tests, benches and the demo: kept out of the production miner on purpose.

`neurons/adversary_miner.py` runs `AdversaryMiner` (subnet.adversary.miner) with
`--adversary.behaviour`; the production `neurons/miner.py` imports nothing from here.
"""
