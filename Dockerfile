# Dockerfile - builds enms-api, enms-worker and enmsctl on Debian bookworm and
# ships them in a runtime image without compilers. Used by compose.yaml.
FROM debian:bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential pkg-config libcivetweb-dev libhiredis-dev libpq-dev libcjson-dev \
      libgsl-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY common common
COPY api api
COPY worker worker
COPY ctl ctl
RUN make -j"$(nproc)" build

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      libcivetweb1 libhiredis0.14 libpq5 libcjson1 libgsl27 curl ca-certificates \
      && rm -rf /var/lib/apt/lists/* && useradd --system --home /nonexistent enms
COPY --from=build /src/build/bin/ /usr/local/bin/
COPY schema /usr/share/enms-retrain/schema
COPY web /usr/share/enms-retrain/web
USER enms
ENV ENMS_SCHEMA_DIR=/usr/share/enms-retrain/schema ENMS_WEB_ROOT=/usr/share/enms-retrain/web
CMD ["enms-api"]
