"""Names shared by the CRD, the Job builder, the handlers and the tests.

Kept in one import-free module so the tests and the benchmark can use them without
pulling in kopf.
"""

from __future__ import annotations

GROUP = "modeldeploy.io"
VERSION = "v1alpha1"
PLURAL = "modeldeployments"
KIND = "ModelDeployment"
API_VERSION = f"{GROUP}/{VERSION}"

MANAGER = "modeldeploy-operator"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_DEPLOYMENT = "modeldeploy.io/deployment"
LABEL_SPEC_HASH = "modeldeploy.io/spec-hash"
ANNOTATION_GENERATION = "modeldeploy.io/generation"
ANNOTATION_RUN_ID = "modeldeploy.io/run-id"
# Full spec sha256 on the ConfigMap and the Job, and sha256 of the ConfigMap's executed
# files: on 409 AlreadyExists the operator checks them (and the controller UID) before
# trusting an object it did not just create (a tenant could squat the predictable name).
ANNOTATION_SPEC_SHA256 = "modeldeploy.io/spec-sha256"
ANNOTATION_CONTENT_SHA256 = "modeldeploy.io/content-sha256"
ANNOTATION_DEPLOYMENT = "modeldeploy.io/deployment-name"  # full CR name (labels cap at 63)
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"

CONTAINER_NAME = "runtime"
JOB_CONFIG_MOUNT = "/etc/modeldeploy/job"
USER_CONFIG_MOUNT = "/etc/modeldeploy/user"
WORK_DIR = "/work"
TERMINATION_LOG = "/dev/termination-log"

PHASES = ("Pending", "Running", "Succeeded", "Failed")
TERMINAL_PHASES = ("Succeeded", "Failed")

# Exit codes of the runtime (docs/contracts.md §1).
EXIT_OK = 0
EXIT_CRASH = 1
EXIT_USER_ERROR = 2
EXIT_VERIFICATION_FAILED = 3
EXIT_ARTIFACT_STORE = 4
NON_RETRYABLE_EXIT_CODES = (EXIT_USER_ERROR, EXIT_VERIFICATION_FAILED)
