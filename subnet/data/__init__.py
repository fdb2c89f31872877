"""Embedded corpus, tokenizers, and fixed-size token pages (train / held-out).

Pages reach the neurons through one interface, `source.PageSource`, with two
backends: `pages.TokenPages` (a token array the node builds itself: the
embedded default) and `shards.ShardPages` (pages fetched on demand from a
pre-tokenized, content-addressed shard store built once by `build.py` and
pinned by its manifest hash, `manifest.py`). `split.py` holds the one
train / held-out rule both use, and the bound that keeps the held-out split
large enough that training on it does not pay (n_heldout >= 100 x
inner_steps x batch_size pages).
"""
