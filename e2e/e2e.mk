# e2e/e2e.mk: included by the top-level Makefile.
#
# e2e-setup builds (once, cached in $TRIAGE_CI_CACHE, default /var/cache/triage-ci) containerd 2.x,
# gVisor, crictl and the test images, and installs the Debian packages the e2e tests need.
# Needs root. The e2e tests (go test -tags e2e) fail, never skip, until it has run.

.PHONY: e2e-setup
e2e-setup:
	e2e/setup.sh
