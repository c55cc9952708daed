#!/bin/bash
# e2e/setup.sh: everything the e2e tests run against, built once into a cache that survives CI runs.
#
#   containerd 1.6 (Debian) + runc, containerd 2.x (built from its Go module), gVisor runsc and its
#   containerd shim (built from the gvisor.dev/gvisor module, five patches), crictl, a pause
#   binary, critest (the CRI validation suite), busybox and pause OCI image tarballs, a test-only CNI
#   plugin that gives pods a dummy, link-local eth0 (CRI insists on one; we never route a private
#   network), and the real Kata shim (containerd-shim-kata-v2, kata-runtime) built from Kata's Go
#   module with fakevm, the test double that stands in for the micro-VM (e2e/kata/fakevm).
#
# Idempotent and non-interactive; run as root. Each build is skipped when its output directory holds a
# stamp equal to its pinned key, so a warm run takes seconds. Output: ${TRIAGE_CI_CACHE}/env, shell
# KEY=VALUE lines with absolute paths (read by e2e/harness). Recipe: /work/shared/reference/e2e-setup.sh.
set -euo pipefail
# The build steps cd into their scratch folders: resolve our own folder first.
HERE=$(cd "$(dirname "$0")" && pwd -P)

CACHE=${TRIAGE_CI_CACHE:-/var/cache/triage-ci}
GO=${GO:-/usr/local/go/bin/go}
GO_MIN=1.26
# gVisor "go" branch with containerd 1.6.36's shim library: plain-address bootstrap, works on 1.6 and 2.x.
GV_OLD=v0.0.0-20260508212337-96dad6a2da94
# gVisor "go" branch with containerd 2.1.5's shim library: JSON bootstrap, containerd >= 1.7 only.
GV_NEW=v0.0.0-20260905035102-160fafc42237
CTRD2=v2.4.2
CRICTL=v1.36.0
# critest, the CRI validation suite (e2e/critest), from the same cri-tools release as crictl.
CRITEST=v1.36.0
# nerdctl, for the nerdctl e2e (a v1 release: it builds from the module proxy as is).
NERDCTL=v1.7.7
# Kata runtime (src/runtime module, main branch); its shim prints a plain address (1.6 and 2.x).
KATA_PV=v0.0.0-20250828155603-754f07cff239
# Bump when a build recipe below changes without a version change, so cached outputs are rebuilt.
RECIPE=4
APT_PACKAGES=(containerd runc busybox-static jq iproute2 util-linux containernetworking-plugins patch prometheus-node-exporter)

START=$(date +%s)
STEP_START=$START
lap() { # $1: what finished
	local now; now=$(date +%s)
	printf '[%4ds total, %4ds step] %s\n' $((now - START)) $((now - STEP_START)) "$1"
	STEP_START=$now
}
die() { echo "e2e/setup.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs Debian packages and writes $CACHE); try: sudo $0"

# --- 1. Debian packages (only those missing) ----------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing Debian packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
lap "Debian packages present: ${APT_PACKAGES[*]}"

# --- 2. Go toolchain and cache layout -------------------------------------------------------------------
[ -x "$GO" ] || die "no Go toolchain at $GO; install Go >= $GO_MIN there or set GO=/path/to/go"
gover=$("$GO" env GOVERSION)
printf '%s\n%s\n' "go$GO_MIN" "$gover" | sort -V -C || die "$GO is $gover; need >= go$GO_MIN"
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd -P)
# One setup at a time per cache: concurrent CI jobs on one machine would race on half-built outputs.
exec 9>"$CACHE/.lock"
flock 9
export GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/cache GOPATH=$CACHE/go/path
export GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
export PATH=$(dirname "$GO"):$PATH

# cached KEY DIR FUNC: run FUNC DIR.tmp unless DIR/.stamp holds KEY, then move it into place, so an
# interrupted build never looks finished.
cached() {
	local key=$1 dir=$2 fn=$3
	if [ "$(cat "$dir/.stamp" 2>/dev/null)" = "$key" ]; then
		lap "cached: $key"
		return
	fi
	rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
	"$fn" "$dir.tmp"
	echo "$key" >"$dir.tmp/.stamp"
	rm -rf "$dir" && mv "$dir.tmp" "$dir"
	lap "built: $key"
}

# gomodule DIR NAME: an empty throwaway module to `go get` pinned tools into.
gomodule() {
	mkdir -p "$1" && cd "$1"
	[ -f go.mod ] || "$GO" mod init "$2" >/dev/null 2>&1
}

# --- 3. gVisor runsc + containerd-shim-runsc-v1, vendored and patched -----------------------------------
build_gvisor() { # $1=version $2=outdir
	local src=$CACHE/src/gvisor-$1
	rm -rf "$src" && gomodule "$src" e2e/gvisor
	printf '//go:build tools\npackage tools\n\nimport (\n\t_ "gvisor.dev/gvisor/runsc"\n\t_ "gvisor.dev/gvisor/shim"\n)\n' >tools.go
	# The go branch's pseudo-versions are not in the checksum database.
	GONOSUMDB=gvisor.dev/gvisor "$GO" get "gvisor.dev/gvisor/runsc@$1" "gvisor.dev/gvisor/shim@$1"
	"$GO" mod vendor
	# (a) root here lacks CAP_SYS_RESOURCE: the shim's SetOOMScore(-999) fails with EACCES; tolerate it.
	sed -i 's|if err := sys.SetOOMScore(cmd.Process.Pid, oomScoreMax); err != nil {|if err := sys.SetOOMScore(cmd.Process.Pid, oomScoreMax); err != nil \&\& !os.IsPermission(err) {|' \
		vendor/gvisor.dev/gvisor/pkg/shim/v1/manager.go
	grep -q 'IsPermission(err)' vendor/gvisor.dev/gvisor/pkg/shim/v1/manager.go ||
		die "gVisor $1: the SetOOMScore patch no longer applies to pkg/shim/v1/manager.go"
	# (b) accept runtimeoptions with an empty TypeUrl (ctr --runtime-config-path sends none); the newer
	# shim already does, so this sed matches only the old one.
	sed -i 's|if o.TypeUrl != optionsType {|if o.TypeUrl != "" \&\& o.TypeUrl != optionsType {|' \
		vendor/gvisor.dev/gvisor/pkg/shim/v1/runsc/container.go
	# (c) a short-lived container's real exit status: `runsc wait` starts after the sandbox has
	# exited and reports 128; take the status the shim's reaper saw (e2e/gvisor-exit-status.patch;
	# upstream google/gvisor#12873 fixes status 0 only). The reaper's import is the one the
	# shim's service uses (containerd 1.x or 2.x, by gVisor version).
	local proc=vendor/gvisor.dev/gvisor/pkg/shim/v1/proc/init.go reaper
	patch -s -p1 -d vendor/gvisor.dev/gvisor <"$HERE/gvisor-exit-status.patch" ||
		die "gVisor $1: e2e/gvisor-exit-status.patch no longer applies to pkg/shim/v1/proc/init.go"
	reaper=$(grep -o '"github.com/containerd/containerd[^"]*/reaper"' vendor/gvisor.dev/gvisor/pkg/shim/v1/runsc/service.go) ||
		die "gVisor $1: pkg/shim/v1/runsc/service.go imports no reaper"
	sed -i "0,/\"github.com\/containerd\/errdefs\"/s||$reaper\n\t&|" "$proc"
	grep -q "$reaper" "$proc" || die "gVisor $1: could not import the reaper in $proc"
	# (d) an id names its own container even when another id starts with it: runsc took "m3"
	# as an ambiguous abbreviation once "m30" existed, and failed every command on m3.
	sed -i 's|\t\tif strings.HasPrefix(id.ContainerID, partialID) {|\t\tif id.ContainerID == partialID {\n\t\t\treturn id, nil\n\t\t}\n&|' \
		vendor/gvisor.dev/gvisor/runsc/container/state_file.go
	grep -q 'if id.ContainerID == partialID {' vendor/gvisor.dev/gvisor/runsc/container/state_file.go ||
		die "gVisor $1: the exact-id patch no longer applies to runsc/container/state_file.go"
	# (e) a container whose rootfs containerd has already unmounted (its shim died) is
	# deleted: its self-backed filestore file is gone with the mount. runsc failed the delete,
	# and its shim then kept the container and would not shut down.
	sed -i 's|if err := os.Remove(filestorePath); err != nil {|if err := os.Remove(filestorePath); err != nil \&\& !os.IsNotExist(err) {|' \
		vendor/gvisor.dev/gvisor/runsc/container/container.go
	[ "$(grep -c 'os.Remove(filestorePath); err != nil && !os.IsNotExist(err)' vendor/gvisor.dev/gvisor/runsc/container/container.go)" -ge 2 ] ||
		die "gVisor $1: the filestore patch no longer applies to runsc/container/container.go"
	CGO_ENABLED=0 "$GO" build -mod=vendor -o "$2/runsc" gvisor.dev/gvisor/runsc
	CGO_ENABLED=0 "$GO" build -mod=vendor -o "$2/containerd-shim-runsc-v1" gvisor.dev/gvisor/shim
	rm -rf "$src"
}
build_gvisor_old() { build_gvisor "$GV_OLD" "$1"; }
build_gvisor_new() { build_gvisor "$GV_NEW" "$1"; }
GV_OLD_DIR=$CACHE/gvisor-$GV_OLD
GV_NEW_DIR=$CACHE/gvisor-$GV_NEW
cached "gvisor $GV_OLD recipe $RECIPE" "$GV_OLD_DIR" build_gvisor_old
cached "gvisor $GV_NEW recipe $RECIPE" "$GV_NEW_DIR" build_gvisor_new

# --- 4. containerd 2.x ----------------------------------------------------------------------------------
build_containerd2() { # $1=outdir
	gomodule "$CACHE/src/containerd-$CTRD2" e2e/containerd2
	local p=github.com/containerd/containerd/v2
	"$GO" get "$p/cmd/containerd@$CTRD2" "$p/cmd/ctr@$CTRD2" "$p/cmd/containerd-shim-runc-v2@$CTRD2"
	local ld="-s -w -X $p/version.Version=$CTRD2 -X $p/version.Revision=triage-ci"
	"$GO" build -tags "urfave_cli_no_docs no_btrfs" -ldflags "$ld" -o "$1/containerd" "$p/cmd/containerd"
	"$GO" build -tags "urfave_cli_no_docs no_btrfs" -ldflags "$ld" -o "$1/ctr" "$p/cmd/ctr"
	CGO_ENABLED=0 "$GO" build -tags "urfave_cli_no_docs no_grpc" -ldflags "$ld" \
		-o "$1/containerd-shim-runc-v2" "$p/cmd/containerd-shim-runc-v2"
	rm -rf "$CACHE/src/containerd-$CTRD2"
}
CTRD2_DIR=$CACHE/containerd-$CTRD2
cached "containerd $CTRD2 recipe $RECIPE" "$CTRD2_DIR" build_containerd2

# --- 5. crictl --------------------------------------------------------------------------------------------
build_crictl() { # $1=outdir
	gomodule "$CACHE/src/crictl-$CRICTL" e2e/crictl
	"$GO" get "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL"
	CGO_ENABLED=0 "$GO" build -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL" \
		-o "$1/crictl" sigs.k8s.io/cri-tools/cmd/crictl
	rm -rf "$CACHE/src/crictl-$CRICTL"
}
CRICTL_DIR=$CACHE/crictl-$CRICTL
cached "crictl $CRICTL recipe $RECIPE" "$CRICTL_DIR" build_crictl

# --- 5a. nerdctl ------------------------------------------------------------------------------------------
build_nerdctl() ( # $1=outdir
	gomodule "$CACHE/src/nerdctl-$NERDCTL" e2e/nerdctl
	"$GO" get "github.com/containerd/nerdctl@$NERDCTL" "github.com/containerd/nerdctl/cmd/nerdctl@$NERDCTL"
	CGO_ENABLED=0 "$GO" build -ldflags "-s -w" -o "$1/nerdctl" github.com/containerd/nerdctl/cmd/nerdctl
	cd / && rm -rf "$CACHE/src/nerdctl-$NERDCTL"
)
NERDCTL_DIR=$CACHE/nerdctl-$NERDCTL
cached "nerdctl $NERDCTL recipe $RECIPE" "$NERDCTL_DIR" build_nerdctl

# --- 5b. critest: a Go test binary (ginkgo), so it is built with go test -c ---------------------------------
# A subshell, so the caller's working directory (the later steps resolve e2e/ paths from it) stays.
build_critest() ( # $1=outdir
	gomodule "$CACHE/src/critest-$CRITEST" e2e/critest
	"$GO" get -t "sigs.k8s.io/cri-tools/cmd/critest@$CRITEST"
	CGO_ENABLED=0 "$GO" test -c -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRITEST" \
		-o "$1/critest" sigs.k8s.io/cri-tools/cmd/critest
	cd / && rm -rf "$CACHE/src/critest-$CRITEST"
)
CRITEST_DIR=$CACHE/critest-$CRITEST
cached "critest $CRITEST recipe $RECIPE" "$CRITEST_DIR" build_critest

# --- 6. pause binary + OCI image tarballs, made by hand (oci-layout + index.json + blobs) ------------------
# mkoci ROOTFS OUT NAME ENTRYPOINT-JSON CMD-JSON: a single-layer amd64 image; reproducible (mtime 0).
mkoci() {
	local rootfs=$1 out=$2 name=$3 ep=$4 cmd=$5 d diff ld ls cfg cs md ms
	d=$(mktemp -d) && mkdir -p "$d/blobs/sha256"
	tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$rootfs" -cf "$d/l.tar" .
	diff=$(sha256sum "$d/l.tar" | cut -d' ' -f1)
	gzip -n -c "$d/l.tar" >"$d/l.tgz" && rm "$d/l.tar"
	ld=$(sha256sum "$d/l.tgz" | cut -d' ' -f1) ls=$(stat -c %s "$d/l.tgz")
	mv "$d/l.tgz" "$d/blobs/sha256/$ld"
	jq -cn --arg d "sha256:$diff" --argjson ep "$ep" --argjson cmd "$cmd" '{architecture:"amd64",os:"linux",
		config:{Env:["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],Entrypoint:$ep,Cmd:$cmd},rootfs:{type:"layers",diff_ids:[$d]}}' >"$d/c.json"
	cfg=$(sha256sum "$d/c.json" | cut -d' ' -f1) cs=$(stat -c %s "$d/c.json")
	mv "$d/c.json" "$d/blobs/sha256/$cfg"
	jq -cn --arg c "sha256:$cfg" --argjson cs "$cs" --arg l "sha256:$ld" --argjson ls "$ls" '{schemaVersion:2,
		mediaType:"application/vnd.oci.image.manifest.v1+json",
		config:{mediaType:"application/vnd.oci.image.config.v1+json",digest:$c,size:$cs},
		layers:[{mediaType:"application/vnd.oci.image.layer.v1.tar+gzip",digest:$l,size:$ls}]}' >"$d/m.json"
	md=$(sha256sum "$d/m.json" | cut -d' ' -f1) ms=$(stat -c %s "$d/m.json")
	mv "$d/m.json" "$d/blobs/sha256/$md"
	echo '{"imageLayoutVersion":"1.0.0"}' >"$d/oci-layout"
	jq -cn --arg m "sha256:$md" --argjson ms "$ms" --arg n "$name" --arg t "${name##*:}" '{schemaVersion:2,manifests:[{
		mediaType:"application/vnd.oci.image.manifest.v1+json",digest:$m,size:$ms,platform:{architecture:"amd64",os:"linux"},
		annotations:{"io.containerd.image.name":$n,"org.opencontainers.image.ref.name":$t}}]}' >"$d/index.json"
	tar -C "$d" -cf "$out" oci-layout index.json blobs
	rm -rf "$d"
}
build_images() { # $1=outdir
	local src=$CACHE/src/images
	rm -rf "$src" && gomodule "$src/pause" e2e/pause
	cat >main.go <<'EOF'
// Command pause is the CRI sandbox process: it reaps children and exits on SIGINT or SIGTERM.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 4)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range c {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
EOF
	CGO_ENABLED=0 "$GO" build -ldflags '-s -w' -o "$1/pause" .
	mkdir -p "$src"/bb/{bin,dev,proc,sys,etc,tmp} "$src/pauseroot"
	cp /bin/busybox "$src/bb/bin/"
	local a
	for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$src/bb/bin/$a"; done
	cp "$1/pause" "$src/pauseroot/pause"
	mkoci "$src/bb" "$1/busybox.tar" docker.io/library/busybox:e2e null '["sh"]'
	mkoci "$src/pauseroot" "$1/pause.tar" localhost/e2e/pause:1 '["/pause"]' null
	rm -rf "$src"
}
IMAGES_DIR=$CACHE/images
BUSYBOX_VERSION=$(dpkg-query -W -f='${Version}' busybox-static)
cached "images busybox $BUSYBOX_VERSION $gover recipe $RECIPE" "$IMAGES_DIR" build_images

# --- 7. CNI: loopback + a test-only plugin that gives the pod a dummy, link-local eth0 ----------------------
build_cni() { # $1=outdir
	mkdir -p "$1/bin" "$1/net.d"
	cp /usr/lib/cni/loopback "$1/bin/"
	cat >"$1/bin/triage-e2e-dummy" <<'EOF'
#!/bin/sh
# Test-only CNI plugin: a dummy eth0 with a link-local address, so CRI is satisfied and nothing is routed.
A=169.254.77.2/32
case "$CNI_COMMAND" in
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}';;
ADD) cat >/dev/null
     nsenter --net="$CNI_NETNS" ip link add "$CNI_IFNAME" type dummy 2>/dev/null
     nsenter --net="$CNI_NETNS" ip addr add $A dev "$CNI_IFNAME" 2>/dev/null
     nsenter --net="$CNI_NETNS" ip link set "$CNI_IFNAME" up
     printf '{"cniVersion":"1.0.0","interfaces":[{"name":"%s","sandbox":"%s"}],"ips":[{"interface":0,"address":"%s"}]}\n' \
       "$CNI_IFNAME" "$CNI_NETNS" $A;;
*) cat >/dev/null;;
esac
EOF
	chmod +x "$1/bin/triage-e2e-dummy"
	echo '{"cniVersion":"1.0.0","name":"triage-e2e","plugins":[{"type":"loopback"},{"type":"triage-e2e-dummy"}]}' \
		>"$1/net.d/10-triage-e2e.conflist"
}
CNI_DIR=$CACHE/cni
CNI_VERSION=$(dpkg-query -W -f='${Version}' containernetworking-plugins)
cached "cni loopback $CNI_VERSION recipe $RECIPE" "$CNI_DIR" build_cni

# --- 8. Kata: containerd-shim-kata-v2 + kata-runtime from the Kata runtime module, and fakevm -------------
# The Makefile-generated config-settings.go is not in the module zip, so the build uses a local copy of
# the module (replace) with that file generated; GOFLAGS overlays are refused under GOMODCACHE. fakevm
# needs Kata's protocol packages, so it is built in the same scratch module, never in Triage's.
# Recipe: /work/shared/reference/kata-fake-e2e.sh.
FAKEVM_SRC=$HERE/kata/fakevm
# kata_module DIR: the scratch module in DIR, Kata's runtime module replaced by a prepared copy.
kata_module() {
	local m=github.com/kata-containers/kata-containers/src/runtime d
	rm -rf "$1" && mkdir -p "$1/cmd/fakevm" && cd "$1"
	printf 'module e2e/kata\n\ngo 1.24\n' >go.mod
	printf '//go:build tools\npackage tools\n\nimport (\n\t_ "%s/cmd/containerd-shim-kata-v2"\n\t_ "%s/cmd/kata-runtime"\n)\n' "$m" "$m" >tools.go
	cp "$FAKEVM_SRC"/*.go cmd/fakevm/
	d=$("$GO" mod download -json "$m@$KATA_PV" | jq -r .Dir)
	[ -d "$d" ] || die "kata: go mod download $m@$KATA_PV gave no module folder"
	cp -r "$d" katasrc && chmod -R u+w katasrc
	sed -e 's|@RUNTIME_NAME@|kata-runtime|g' -e 's|@PROJECT_NAME@|Kata Containers|g' -e 's|@PROJECT_TYPE@|kata|g' \
		-e 's|@PROJECT_URL@|https://github.com/kata-containers|g' -e 's|@PROJECT_ORG@|kata-containers|g' \
		-e 's|@PKGRUNDIR@|/run/kata-containers|g' -e "s|@COMMIT@|${KATA_PV##*-}|g" -e "s|@VERSION@|3.x-${KATA_PV##*-}|g" \
		-e 's|@CONFIG_PATH@|/usr/share/defaults/kata-containers/configuration.toml|g' \
		-e 's|@SYSCONFIG@|/etc/kata-containers/configuration.toml|g' \
		katasrc/pkg/katautils/config-settings.go.in >katasrc/pkg/katautils/config-settings.go
	# Seed go.sum from Kata's own: the checksum database has no entry for some of its dependencies.
	sort -u katasrc/go.sum -o go.sum
	"$GO" mod edit -require="$m@$KATA_PV" -replace="$m=./katasrc"
	"$GO" mod tidy
}
build_kata() { # $1=outdir
	local src=$CACHE/src/kata-$KATA_PV m=github.com/kata-containers/kata-containers/src/runtime
	kata_module "$src"
	"$GO" build -o "$1/containerd-shim-kata-v2" "$m/cmd/containerd-shim-kata-v2"
	"$GO" build -o "$1/kata-runtime" "$m/cmd/kata-runtime"
	cd / && rm -rf "$src"
}
build_fakevm() { # $1=outdir
	local src=$CACHE/src/fakevm-$KATA_PV
	kata_module "$src"
	CGO_ENABLED=0 "$GO" build -tags kata_fakevm -o "$1/fakevm" ./cmd/fakevm
	cd / && rm -rf "$src"
}
KATA_DIR=$CACHE/kata-$KATA_PV
cached "kata $KATA_PV $gover recipe $RECIPE" "$KATA_DIR" build_kata
FAKEVM_DIR=$CACHE/fakevm
FAKEVM_SUM=$(cat "$FAKEVM_SRC"/*.go | sha256sum | cut -c1-12)
cached "fakevm $FAKEVM_SUM kata $KATA_PV $gover recipe $RECIPE" "$FAKEVM_DIR" build_fakevm

rmdir "$CACHE/src" 2>/dev/null || true # each build removes its sources; only the module cache is kept

# --- 9. env: what e2e/harness reads -------------------------------------------------------------------------
for f in /usr/bin/containerd /usr/bin/ctr /usr/bin/containerd-shim-runc-v2 /usr/sbin/runc; do
	[ -x "$f" ] || die "$f is missing although its Debian package is installed; reinstall it: apt-get install --reinstall containerd runc"
done
cat >"$CACHE/env.tmp" <<EOF
CTRD16_BIN=/usr/bin/containerd
CTR16=/usr/bin/ctr
RUNC_SHIM16=/usr/bin/containerd-shim-runc-v2
CTRD2_BIN=$CTRD2_DIR/containerd
CTR2=$CTRD2_DIR/ctr
RUNC_SHIM2=$CTRD2_DIR/containerd-shim-runc-v2
RUNSC=$GV_OLD_DIR/runsc
RUNSC_SHIM=$GV_OLD_DIR/containerd-shim-runsc-v1
RUNSC_NEW=$GV_NEW_DIR/runsc
RUNSC_SHIM_NEW=$GV_NEW_DIR/containerd-shim-runsc-v1
CRICTL=$CRICTL_DIR/crictl
NERDCTL=$NERDCTL_DIR/nerdctl
CRITEST=$CRITEST_DIR/critest
BUSYBOX_TAR=$IMAGES_DIR/busybox.tar
PAUSE_TAR=$IMAGES_DIR/pause.tar
CNI_BIN_DIR=$CNI_DIR/bin
CNI_CONF_DIR=$CNI_DIR/net.d
KATA_SHIM=$KATA_DIR/containerd-shim-kata-v2
KATA_RUNTIME=$KATA_DIR/kata-runtime
KATA_FAKEVM=$FAKEVM_DIR/fakevm
EOF
mv "$CACHE/env.tmp" "$CACHE/env"
lap "wrote $CACHE/env"
