# shadowproxy: build with `docker build -t shadowproxy .`, run with
#   docker run -p 8080:8080 -p 9090:9090 -e SHADOWPROXY_PRIMARY=http://legacy:3000 \
#     -e SHADOWPROXY_SHADOW=http://rewrite:8000 -e SHADOWPROXY_ADMIN_TOKEN=... shadowproxy
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY shadowproxy ./shadowproxy
COPY rules ./rules
RUN pip install . \
 && useradd --system --uid 10001 --home-dir /data --create-home shadowproxy

USER shadowproxy
WORKDIR /data

# In a container the listeners must face the network; the admin one then requires
# SHADOWPROXY_ADMIN_TOKEN (start-up refuses without it).
ENV SHADOWPROXY_LISTEN=0.0.0.0:8080 \
    SHADOWPROXY_ADMIN_LISTEN=0.0.0.0:9090 \
    SHADOWPROXY_STORE=sqlite:////data/shadowproxy.db

EXPOSE 8080 9090
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9090/healthz', timeout=2).status == 200 else 1)"

ENTRYPOINT ["shadowproxy"]
CMD ["run"]
