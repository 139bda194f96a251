# syntax=docker/dockerfile:1
# Corral with its hot path compiled (mypyc), in a slim image that needs no shell at run time.
#   docker build -t corral .
#   docker run --rm -p 8000:8000 corral      # serves the welcome page
# An app's own image starts FROM this one: see "Containers" in docs/production.md.

ARG PYTHON_VERSION=3.12

# -- build: compile Corral; the full image has gcc and Python's headers ---------------------
FROM python:${PYTHON_VERSION}-bookworm AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY src ./src
# A build that fell back to pure Python would ship the slow path silently: fail instead.
RUN python -m venv /opt/corral \
    && /opt/corral/bin/pip install --no-cache-dir . \
    && /opt/corral/bin/corral --version | grep -F "(compiled)"

# -- run: no compiler, no build files; the same Python at the same path --------------------
FROM python:${PYTHON_VERSION}-slim-bookworm
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin corral
COPY --from=build /opt/corral /opt/corral
ENV PATH="/opt/corral/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /app
# Numeric, so Kubernetes' runAsNonRoot can check it.
USER 10001:10001
EXPOSE 8000 9100
# The master drains on SIGTERM (docs/operations.md#graceful-stop); it is PID 1 and reaps its workers.
STOPSIGNAL SIGTERM
# Liveness of the master, on the --metrics-bind port below; Python, since there is no curl or shell.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9100/healthz', timeout=2)"]
ENTRYPOINT ["corral"]
CMD ["serve", "--bind", "0.0.0.0:8000", "--metrics-bind", "0.0.0.0:9100"]
