"""Which device a node computes on, and how, without the global model's bytes ever depending on it."""
