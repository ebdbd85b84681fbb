# One Dockerfile, a target per role. Every target starts from Debian bookworm so the
# images run the same Debian packages the tests run. `python3 hack/images.py build` makes
# the base image (debootstrap; there is no registry to pull from) and builds every target,
# skipping those whose inputs did not change. By hand:
#   podman build --target operator -t docker.io/kuberds/operator:dev .
# The base is named in full so podman never asks a registry which "debian" is meant.
FROM docker.io/library/debian:bookworm-slim AS python
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# The kuberds package in a virtualenv, built once and copied into each role's image.
# Its dependencies (and build backend) come first, from pyproject.toml alone, so a code
# change reuses that layer and only reinstalls kuberds itself, offline.
# Behind a TLS-intercepting proxy, pass its CA bundle as a build secret (never a layer):
#   podman build --secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt …
FROM python AS kuberds-venv
COPY pyproject.toml /src/
RUN --mount=type=secret,id=ca-bundle,required=false \
    python3 -m venv /opt/kuberds \
 && if [ -f /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
 && python3 -c 'import tomllib; p = tomllib.load(open("/src/pyproject.toml", "rb")); \
print("\n".join(p["build-system"]["requires"] + p["project"]["dependencies"]))' >/tmp/requirements.txt \
 && /opt/kuberds/bin/pip install --no-cache-dir -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt
COPY README.md /src/
COPY operator /src/operator
RUN /opt/kuberds/bin/pip install --no-cache-dir --no-deps --no-build-isolation /src

FROM python AS operator
# A named user for the fixed uid: Kopf (getpass) and other tools look the uid up.
RUN groupadd --system --gid 65532 kuberds \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin kuberds
COPY --from=kuberds-venv /opt/kuberds /opt/kuberds
# A fixed non-root uid, so Pod Security "restricted" (runAsNonRoot) is satisfied.
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/opt/kuberds/bin/kuberds"]
CMD ["operator"]

# PostgreSQL with Patroni (HA), pgBackRest (backups) and PgBouncer, and the kuberds agent that
# runs them. postgres gets the fixed uid/gid 999 the pods run as (Debian would pick one).
FROM python AS postgres
RUN groupadd --system --gid 999 postgres \
 && useradd --system --uid 999 --gid 999 --home-dir /var/lib/postgresql --shell /bin/bash postgres \
 && mkdir -p /etc/postgresql-common \
 && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf \
 && apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 postgresql-contrib patroni pgbackrest pgbouncer catatonit \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
COPY --from=kuberds-venv /opt/kuberds /opt/kuberds
USER 999:999
EXPOSE 5432 8008 9187
# catatonit is PID 1 and reaps orphans: Patroni daemonizes the postmaster, which then belongs
# to PID 1, and a postmaster left a zombie looks alive to Patroni (a restart never ends).
ENTRYPOINT ["/usr/bin/catatonit", "--", "/opt/kuberds/bin/kuberds"]
CMD ["agent", "postgres"]

# Memcached and the kuberds agent that runs it (and serves Auto Discovery). memcached gets the
# fixed uid/gid 999 the pods run as.
FROM python AS memcached
RUN groupadd --system --gid 999 memcache \
 && useradd --system --uid 999 --gid 999 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin memcache \
 && apt-get update \
 && apt-get install -y --no-install-recommends memcached catatonit \
 && rm -rf /var/lib/apt/lists/*
COPY --from=kuberds-venv /opt/kuberds /opt/kuberds
USER 999:999
EXPOSE 11211 11212 9150
ENTRYPOINT ["/usr/bin/catatonit", "--", "/opt/kuberds/bin/kuberds"]
CMD ["agent", "memcached"]

# Redis and the kuberds agent that runs it (and decides with the other members' agents who is
# primary). redis gets the fixed uid/gid 999 the pods run as.
FROM python AS redis
RUN groupadd --system --gid 999 redis \
 && useradd --system --uid 999 --gid 999 --home-dir /var/lib/redis --shell /usr/sbin/nologin redis \
 && apt-get update \
 && apt-get install -y --no-install-recommends redis-server catatonit \
 && rm -rf /var/lib/apt/lists/*
COPY --from=kuberds-venv /opt/kuberds /opt/kuberds
USER 999:999
EXPOSE 6379 8010 9121
ENTRYPOINT ["/usr/bin/catatonit", "--", "/opt/kuberds/bin/kuberds"]
CMD ["agent", "redis"]

# MariaDB 10.11 and the kuberds agent that runs it (and decides with the other members' agents
# who is primary). mysql gets the fixed uid/gid 999 the pods run as; the agent, running as it,
# logs in to its own server over the socket as the mysql account (unix_socket).
FROM python AS mariadb
RUN groupadd --system --gid 999 mysql \
 && useradd --system --uid 999 --gid 999 --home-dir /var/lib/mysql --shell /usr/sbin/nologin mysql \
 && apt-get update \
 && apt-get install -y --no-install-recommends mariadb-server mariadb-client mariadb-backup catatonit \
 && rm -rf /var/lib/apt/lists/* /var/lib/mysql/* /etc/mysql/conf.d/* \
 && mkdir -p /var/lib/mysql/data /var/run/mysqld \
 && chown -R mysql:mysql /var/lib/mysql /var/run/mysqld
COPY --from=kuberds-venv /opt/kuberds /opt/kuberds
USER 999:999
EXPOSE 3306 8011 9104
ENTRYPOINT ["/usr/bin/catatonit", "--", "/opt/kuberds/bin/kuberds"]
CMD ["agent", "mariadb"]

# SeaweedFS's S3 gateway for the e2e suite. No Go toolchain image exists here (no registry)
# and Debian's golang is too old, so the `weed` that hack/build-binaries.sh builds (linked
# against bookworm's glibc, like this image) comes in through a named build context:
#   podman build --build-context weed-bin="$(bash hack/build-binaries.sh --print-bin-dir)" \
#     --target s3 -t docker.io/kuberds/s3:dev .
FROM docker.io/library/debian:bookworm-slim AS s3
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir /data \
 && chown 65532:65532 /data
COPY --from=weed-bin weed /usr/local/bin/weed
USER 65532:65532
WORKDIR /data
EXPOSE 8333
# Logs to stderr, where the kubelet collects them (weed writes files under /tmp otherwise).
ENTRYPOINT ["/usr/local/bin/weed", "-logtostderr=true"]
CMD ["server", "-dir=/data", "-filer", "-s3"]
