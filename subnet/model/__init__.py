"""Model presets (Llama-style), fragment partition, hashing and checkpoints."""
