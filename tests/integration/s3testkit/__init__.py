"""Test kit for the S3 integration tests: a real moto S3 server process and a fault-injecting HTTP proxy."""
