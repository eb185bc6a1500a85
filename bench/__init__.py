"""Benchmarks: throughput and latency of the pipeline against the raw limit and a peer."""
