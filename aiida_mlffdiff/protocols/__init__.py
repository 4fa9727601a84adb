"""Protocols (fast / moderate / precise) as YAML files, read by the processes that use them."""
