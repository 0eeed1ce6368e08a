# strait's container image: built on the official Rust image, run on Debian slim as a
# non-root user. Config and certificates are volumes; the HEALTHCHECK asks the probe's /live.
#
#   docker build -t strait .
#   docker run -p 8080:8080 -p 8085:8085 strait
#   docker run -v $PWD/my.yaml:/etc/strait/strait.yaml:ro -v $PWD/tls:/etc/strait/tls:ro strait
#
# compose.yaml runs it with two demo origins. tests/it/container.rs checks this file's paths
# and user against the repository (no container engine runs in the test suite).

FROM rust:1-bookworm AS build
# Pingora's vendored OpenSSL and zlib-ng need cmake, perl and a C/C++ compiler.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake perl make gcc g++ \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The manifest names bench and example targets, so their files must be present to build.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY examples ./examples
RUN cargo build --release --locked --bin strait

FROM debian:bookworm-slim
# ca-certificates: https:// backends are verified against the system bundle.
# curl: the HEALTHCHECK.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home --shell /usr/sbin/nologin --uid 10001 strait \
    && install -d -o strait -g strait -m 0750 /etc/strait /etc/strait/tls /var/log/strait
COPY --from=build /src/target/release/strait /usr/local/bin/strait
COPY conf/container/strait.yaml /etc/strait/strait.yaml
VOLUME ["/etc/strait", "/etc/strait/tls"]
USER strait
ENV STRAIT_CONFIG=/etc/strait/strait.yaml
EXPOSE 8080 8085
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8085/live || exit 1
# In the foreground: the container runtime is the supervisor; SIGTERM drains (drain_delay).
ENTRYPOINT ["/usr/local/bin/strait"]
