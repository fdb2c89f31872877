"""Test harness: real processes and real chains for the validator_tests suite."""
