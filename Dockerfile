# kdns image: a drop-in for registry.k8s.io/coredns/coredns in kind/kubeadm clusters.
#
# Built from the source tree alone, as deploy/README.md shows:
#   docker build -t kdns:0.1.0 .
#   deploy/build-image.sh        # daemonless: buildah builds this file, FROM a local Debian base
#
# Two stages. `build` (Debian's python3, gcc and Python's headers; kdns's dependencies from PyPI)
# compiles kdns's C extension (kdns/server/_hotpath.c) for the image's own Python, installs kdns into
# a venv and gathers what runs under /rootfs (deploy/rootfs.py: the interpreter, its standard
# library, the shared libraries they load, the venv). The final stage is that tree alone, FROM
# scratch: no shell, no apt, no pip, no compiler (CoreDNS's image has no shell either).
#
# What kubeadm's Deployment (deploy/coredns.yaml) expects of the image: it passes only
# args (`-conf /etc/coredns/Corefile`), so the ENTRYPOINT starts the server; it runs it with
# capabilities drop ALL + add NET_BIND_SERVICE, allowPrivilegeEscalation false and a read-only root,
# under the image's own USER (CoreDNS's is 65532:65532).
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build
# python3-venv brings pip into the venv for the install (uninstalled before rootfs.py gathers the
# venv); libcap2-bin is setcap; ca-certificates is the CA bundle the image ships.
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv python3-dev gcc libc6-dev binutils libcap2-bin ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY kdns/ kdns/
COPY deploy/rootfs.py deploy/
# pip builds kdns's wheel (setuptools from PyPI, gcc for the C extension) and installs it with the
# `fast` extra; the kubeconfig extra (the `kubernetes` package) stays out: a Pod uses in-cluster
# config.
RUN python3 -m venv /opt/kdns \
 && /opt/kdns/bin/pip install --no-cache-dir --disable-pip-version-check '.[fast]' \
 && /opt/kdns/bin/pip uninstall --yes --disable-pip-version-check pip setuptools \
 && python3 deploy/rootfs.py /opt/kdns /rootfs
# A non-root process binds :53 only through a file capability on the binary that actually runs,
# because no_new_privs and an empty ambient set leave no other way: the interpreter behind every
# symlink. COPY --from keeps it (the security.capability xattr), as
# CoreDNS's own Dockerfile relies on.
RUN set -eu; \
    interp="/rootfs$(readlink -f /opt/kdns/bin/python3)"; \
    setcap cap_net_bind_service=+ep "$interp"; \
    case "$(getcap "$interp")" in *cap_net_bind_service*) ;; *) exit 1 ;; esac

FROM scratch
COPY --from=build /rootfs/ /
# Read-only root at run time: no bytecode writes (rootfs.py compiled the .pyc files), logs
# unbuffered to stdout/stderr for `kubectl logs`.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/kdns/bin:/usr/bin
USER 65532:65532
WORKDIR /
EXPOSE 53/udp 53/tcp 9153 8080 8181
# The console script's shebang is /opt/kdns/bin/python3, a symlink to the setcap'd interpreter: the
# kernel execs that binary, so its file capability is the one that applies.
ENTRYPOINT ["/opt/kdns/bin/kdns"]
CMD ["-conf", "/etc/coredns/Corefile"]
