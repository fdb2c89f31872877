"""Tessera devnet: a local subtensor-semantics chain behind the SDK's Substrate seam.

`tessera devnet start|stop|status|bootstrap` (cli.py) runs it;
`subnet.devnet.substrate.DevnetSubstrate` plugs it into `bt.Subtensor`;
`subnet.devnet.yuma` is the epoch maths. See contrib/DEVNET.md.
"""
