# Dockerfile - builds enms-api, enms-worker and enmsctl on Debian bookworm with
# the Makefile (the same `make build` as a checkout, which also vendors the
# dashboard's Chart.js from libjs-chart.js) and ships them in a runtime image
# without compilers. Used by compose.yaml; docs/operations.md explains it.
# tests/integration/test_deploy.py checks that the build stage installs the
# build packages of scripts/deps.sh, builds through make, and that the runtime
# stage installs the package of every library the binaries link.

FROM debian:bookworm AS build
# The "build" section of scripts/deps.sh, plus libjs-chart.js for web-assets.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
      build-essential pkg-config git \
      libcivetweb-dev libhiredis-dev libpq-dev libcjson-dev libgsl-dev \
      libjs-chart.js \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# .dockerignore keeps build outputs, the generated web/vendor copies and the
# git history out of the context.
COPY . .
# build makes web-assets too; the test -f turns a missing Chart.js (which
# web-assets only warns about) into a failed image build.
RUN make -j"$(nproc)" BUILD=build build && test -s web/vendor/chart.min.js

FROM debian:bookworm-slim AS runtime
# Shared libraries the binaries link (no -dev packages, no compiler), curl for
# the API's healthcheck.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
      libcivetweb1 libhiredis0.14 libpq5 libcjson1 libgsl27 \
      curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin enms
# Everything `make build` put in build/bin: enms-api, enms-worker, enmsctl.
COPY --from=build /src/build/bin/ /usr/local/bin/
COPY --from=build /src/deploy/enms-worker-healthcheck /usr/local/bin/
COPY --from=build /src/schema /usr/share/enms-retrain/schema
# web/ after make: the dashboard with its vendored Chart.js.
COPY --from=build /src/web /usr/share/enms-retrain/web
USER enms
ENV ENMS_SCHEMA_DIR=/usr/share/enms-retrain/schema \
    ENMS_WEB_ROOT=/usr/share/enms-retrain/web
EXPOSE 8080
CMD ["enms-api"]
