"""Pure protocol facts both neurons compute the same way: windows, seeds,
assignment, object keys, manifests. No I/O, no clock, no unseeded randomness."""
