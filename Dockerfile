# syntax=docker/dockerfile:1
# AgentFlow: the agentflowd daemon and the agentflow CLI.
# The daemon's hardening (HEALTHCHECK on /healthz, state volume) arrives with `agentflowd serve`.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY agentflowd ./agentflowd
COPY sandbox ./sandbox
COPY router ./router
COPY schemas ./schemas
RUN pip install --no-cache-dir build==1.2.2 \
 && python -m build --wheel --outdir /dist

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --home-dir /var/lib/agentflow --create-home agentflow
COPY --from=build /dist/*.whl /tmp/
RUN pip install --no-cache-dir /tmp/*.whl && rm /tmp/*.whl
COPY examples/workflows /usr/share/agentflow/examples
USER agentflow
WORKDIR /var/lib/agentflow
ENTRYPOINT ["agentflowd"]
CMD ["check", "/usr/share/agentflow/examples"]
