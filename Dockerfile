# kdns image: a drop-in for registry.k8s.io/coredns/coredns in kind/kubeadm clusters.
#
# The wheels are built outside the image, so the build needs no network and no trust store inside:
#   deploy/build-image.sh                                 # daemonless (buildah); makes the wheels too
#   pip wheel '.[fast]' pip -w dist/wheels && docker build -t kdns:0.1.0 .
#
# What kubeadm's Deployment expects of the image (shared/docs/kind-dropin.md A2): it passes only
# args (`-conf /etc/coredns/Corefile`), so the ENTRYPOINT starts the server; it runs it with
# capabilities drop ALL + add NET_BIND_SERVICE, allowPrivilegeEscalation false and a read-only root,
# under the image's own USER (CoreDNS's is 65532:65532).
ARG BASE=python:3.12-slim

FROM ${BASE} AS install
COPY dist/wheels/ /wheels/
# pip runs from its own wheel (the base need not ship pip) into a venv: Debian's python3 is
# "externally managed" (PEP 668). --no-index: nothing is fetched. The .pyc files are compiled here,
# at build time, because the running container cannot write them.
RUN python3 -m venv --without-pip /opt/kdns \
 && set -- /wheels/pip-*.whl \
 && /opt/kdns/bin/python3 "$1/pip" install --no-index --find-links /wheels --no-cache-dir \
      --disable-pip-version-check "$(echo /wheels/kdns-*.whl)[fast]" \
 && /opt/kdns/bin/python3 -c 'import kdns.cli, uvloop'

FROM ${BASE}
# A non-root process binds :53 only through a file capability on the binary that actually runs,
# because no_new_privs and an empty ambient set leave no other way (kind-dropin.md A2 item 6): the
# interpreter behind every symlink. setcap comes from libcap2-bin; a base without it (python:*-slim)
# gets it from apt just for this step.
# hadolint ignore=DL3008
RUN set -eu; \
    interp="$(readlink -f "$(command -v python3)")"; \
    if ! command -v setcap >/dev/null; then \
      apt-get update; DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libcap2-bin; \
      added=1; \
    fi; \
    setcap cap_net_bind_service=+ep "$interp"; \
    case "$(getcap "$interp")" in *cap_net_bind_service*) ;; *) exit 1 ;; esac; \
    if [ -n "${added:-}" ]; then \
      apt-get purge -y --auto-remove libcap2-bin; rm -rf /var/lib/apt/lists/*; \
    fi
COPY --from=install /opt/kdns /opt/kdns

# Read-only root at run time: no bytecode writes (the .pyc files were compiled at install), logs
# unbuffered to stdout/stderr for `kubectl logs`.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/kdns/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
USER 65532:65532
WORKDIR /
EXPOSE 53/udp 53/tcp 9153 8080 8181
# The console script's shebang is /opt/kdns/bin/python3, a symlink to the setcap'd interpreter: the
# kernel execs that binary, so its file capability is the one that applies.
ENTRYPOINT ["/opt/kdns/bin/kdns"]
CMD ["-conf", "/etc/coredns/Corefile"]
