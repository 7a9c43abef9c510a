# syntax=docker/dockerfile:1
# agentflowd in a container: the same service as systemd/agentflowd.service.
#   docker build -t agentflowd .
#   docker run -v ./agentflowd.yaml:/etc/agentflow/agentflowd.yaml:ro -v agentflow:/var/lib/agentflow -p 8080:8080 agentflowd

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
RUN pip install --no-cache-dir build==1.2.2
COPY pyproject.toml README.md ./
COPY agentflowd ./agentflowd
COPY sandbox ./sandbox
COPY router ./router
COPY schemas ./schemas
RUN python -m build --wheel --outdir /dist

FROM python:3.11-slim-bookworm
# pygit2's wheel bundles libgit2 (file://, https://); git and ssh serve ssh:// remotes, whose
# host keys OpenSSH checks against known_hosts (pygit2 cannot).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --home-dir /var/lib/agentflow --create-home agentflow \
 && mkdir -p /etc/agentflow && chown agentflow /var/lib/agentflow
COPY --from=build /dist/*.whl /tmp/
RUN pip install --no-cache-dir /tmp/*.whl && rm /tmp/*.whl
COPY systemd/agentflowd.yaml /etc/agentflow/agentflowd.yaml
USER 10001
WORKDIR /var/lib/agentflow
ENV PYTHONUNBUFFERED=1 \
    AGENTFLOW_LISTEN=0.0.0.0:8080 \
    AGENTFLOW_STATE_DIR=/var/lib/agentflow \
    AGENTFLOW_LOG_FORMAT=json
VOLUME ["/var/lib/agentflow"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["agentflowd", "serve", "--config", "/etc/agentflow/agentflowd.yaml"]
