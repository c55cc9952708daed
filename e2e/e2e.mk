# e2e/e2e.mk: included by the top-level Makefile.
#
# e2e-setup builds (once, cached in $TRIAGE_CI_CACHE, default /var/cache/triage-ci) containerd 2.x,
# gVisor, crictl and the test images, and installs the Debian packages the e2e tests need.
# Needs root. The e2e tests (go test -tags e2e) fail, never skip, until it has run.

.PHONY: e2e-setup
e2e-setup:
	e2e/setup.sh

# critest: the CRI validation suite (cri-tools critest, built by e2e-setup) against the triage
# and runc handlers of one private containerd 2.x, then 1.6, offline (images from a registry on
# 127.0.0.1); writes bench/CRITEST.md (about 5 minutes) and fails if a spec that passes on runc
# does not pass on triage.
CRITEST_FLAGS ?= -containerd 2,1.6

.PHONY: critest
critest: build e2e-setup
	TRIAGE_BIN=$(CURDIR)/bin CGO_ENABLED=0 $(GO) run ./e2e/critest $(CRITEST_FLAGS) -out bench/CRITEST.md
