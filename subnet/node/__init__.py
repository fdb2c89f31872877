"""What a miner and a validator share at run time: the chain view and the global model.

`protocol/` computes facts; this package fetches the inputs those facts need
(block hashes, the metagraph, commitments) through the SDK client, and keeps a
node's copy of the global model in step with the lead validator.
"""
