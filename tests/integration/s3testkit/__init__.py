"""Test kit for the S3 integration tests: a real moto S3 server process and a fault-injecting HTTP proxy."""

TEST_KEY_ID = "modeldeploy-test-key"
TEST_SECRET = "modeldeploy-test-secret-DO-NOT-PRINT"  # asserted never to appear in error messages
