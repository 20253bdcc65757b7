# bandpass serve in a container. UNTESTED: Docker is not available where
# bandpass is developed, so this file has never been built; it is kept
# minimal on purpose (docs/operators.md, "Running it as a service").
#
#   docker build -t bandpass .
#   docker run -v /etc/bandpass:/etc/bandpass -p 9464:9464 bandpass
#
# The config is read from /etc/bandpass/bandpass.toml (filters' paths are
# relative to it); give it an [admin] section listening on 0.0.0.0:9464
# for the health check below. The sample filters are in /filters.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake libssl-dev \
    && rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
RUN scripts/build-filters.sh --quiet && cargo build --release -p bandpass

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libssl3 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/bandpass --create-home bandpass
COPY --from=build /src/target/release/bandpass /usr/local/bin/bandpass
COPY --from=build /src/sample-filters/target/wasm32-wasip2/release/*.wasm /filters/
USER bandpass
ENV BANDPASS_CACHE_DIR=/var/lib/bandpass/cache
# Liveness: /healthz. (/readyz is for routing: a spare instance holding no
# partition is healthy but not ready.)
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS http://127.0.0.1:9464/healthz || exit 1
# SIGTERM drains and commits; SIGHUP reloads the filters.
STOPSIGNAL SIGTERM
ENTRYPOINT ["bandpass", "serve", "--log-format", "json", "--log", "info", "--config", "/etc/bandpass/bandpass.toml"]
