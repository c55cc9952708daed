//go:build kata_fakevm

// Command fakevm is a TEST DOUBLE, never a runtime: it stands in for the micro-VM that
// containerd-shim-kata-v2 would boot, so the e2e tests can drive the REAL Kata shim on
// machines where no VM can run (no vhost-vsock, no usable nested KVM).
//
// It serves Kata's remote-hypervisor protocol ([hypervisor.remote] in configuration.toml):
// CreateVM opens a per-sandbox socket served by an in-process fake kata-agent, which runs
// each container process on the HOST, chrooted into the rootfs the shim shared for the
// guest. There is no guest kernel and no isolation beyond chroot; nothing about Kata's
// security can be concluded from it. What it does show is that Triage starts, drives and
// deletes the real Kata shim through containerd exactly as containerd would.
//
// It needs Kata's protocol packages, which Triage's go.mod does not carry: e2e/setup.sh
// builds it (build tag kata_fakevm) in the same scratch module as the Kata shim.
// Adapted from /work/shared/reference/fakevm.go.txt.
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"os"

	"github.com/containerd/ttrpc"
	hvpb "github.com/kata-containers/kata-containers/src/runtime/protocols/hypervisor"
)

func main() {
	sock := flag.String("socket", "", "remote hypervisor ttrpc socket (remote_hypervisor_socket in Kata's config)")
	dir := flag.String("dir", "", "folder for the per-sandbox agent sockets")
	flag.Parse()
	if *sock == "" || *dir == "" {
		log.Fatal("fakevm: -socket and -dir are required")
	}
	os.Remove(*sock)
	l, err := net.Listen("unix", *sock)
	if err != nil {
		log.Fatal(err)
	}
	s, err := ttrpc.NewServer()
	if err != nil {
		log.Fatal(err)
	}
	hvpb.RegisterHypervisorService(s, newHypervisor(*dir))
	log.Printf("fakevm listening on %s", *sock)
	log.Fatal(s.Serve(context.Background(), l))
}
