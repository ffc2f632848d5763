#!/bin/sh
# One-shot (temporal-create-namespace): the namespace HybridOps runs in, once the server is
# healthy. Idempotent: an existing namespace is left as it is.
set -eu
NAMESPACE=${DEFAULT_NAMESPACE:-default}
ADDRESS=${TEMPORAL_ADDRESS:-temporal:7233}
temporal operator cluster health --address "$ADDRESS"
temporal operator namespace describe -n "$NAMESPACE" --address "$ADDRESS" >/dev/null 2>&1 \
  || temporal operator namespace create -n "$NAMESPACE" --retention 30d --address "$ADDRESS"
echo "namespace $NAMESPACE ready"
