"""Embedded corpus, tokenizers, and fixed-size token pages (train / held-out)."""
