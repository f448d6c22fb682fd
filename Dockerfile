# coronet: the microservice demo as one image.
#
#   docker build -t coronet .
#   docker run -p 8080:8080 coronet                       # the gateway (default)
#   docker run -e CORONET_BACKEND_ROLE=orders -e CORONET_SERVER_LISTEN=0.0.0.0:8082 \
#     coronet coronet-backend --config /etc/coronet/backend.toml   # a backend
#
# The build stage runs the same scripts as the README (scripts/fresh-check.sh
# runs them on a fresh Debian 12 root): setup, the test suite, the Release
# build. The runtime stage has the binaries, their configs and the shared
# libraries they load, and runs as an unprivileged user.

FROM debian:bookworm AS build
WORKDIR /src/coronet
COPY . .
RUN scripts/setup.sh \
 && scripts/test.sh --only=normal \
 && scripts/build.sh

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends libspdlog1.10 libfmt9 libtomlplusplus3 libssl3 libnghttp2-14 \
    zlib1g libzstd1 libbrotli1 libpq5 libhiredis0.14 \
    ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin coronet
COPY --from=build /src/coronet/build-release/bin/coronet-gateway \
                  /src/coronet/build-release/bin/coronet-backend \
                  /src/coronet/build-release/bin/coronet-hello \
                  /src/coronet/build-release/bin/coronet-echo /usr/local/bin/
COPY --from=build /src/coronet/configs/gateway.toml /src/coronet/configs/backend.toml \
                  /src/coronet/configs/hello.toml /src/coronet/configs/echo.toml /etc/coronet/
COPY --from=build /src/coronet/configs/deploy/healthcheck /usr/local/bin/coronet-healthcheck
USER 10001:10001
# gateway 8080; backends 8081 (users), 8082 (orders), 8083 (recommendations)
EXPOSE 8080 8081 8082 8083
# Asks /healthz on the port the process listens on (CORONET_SERVER_LISTEN).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["coronet-healthcheck"]
# Containers listen on every interface; the configs' loopback default is for
# a developer machine.
ENV CORONET_SERVER_LISTEN=0.0.0.0:8080
STOPSIGNAL SIGTERM
CMD ["coronet-gateway", "--config", "/etc/coronet/gateway.toml"]
