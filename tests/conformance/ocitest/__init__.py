"""Helpers of the runtime-spec conformance suite: the checker, bundles and runtime drivers."""
