"""The devnet's Substrate face: JSON-RPC over WebSocket with SCALE values and V15 metadata.

The same state and rules as the JSON face (`subnet.devnet.server`): reads go
through `subnet.devnet.reads.Reader`, signed SCALE extrinsics into the same
`Node` pool and `Runtime.apply`; values are SCALE-encoded with the SDK's
own codec (`bittensor_core`) from the metadata `metadata.build_metadata`
produces, so the pinned SDK's `RpcSubstrate` and `btcli` talk to the devnet
unchanged.
"""
