"""Evaluation harness: phase suites, sandbox, HumanEval, routing evaluation, benchmarks."""
