"""Benchmarks for aiomasto: a benchmark server and the scenarios that run against it."""
