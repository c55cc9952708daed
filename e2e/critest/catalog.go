package main

import "fmt"

// mirroredHosts are the registries critest pulls from; hosts.toml sends each to the local one.
// The repository paths below are the image names without these hosts.
var mirroredHosts = []string{"registry.k8s.io", "k8s.gcr.io", "gcr.io"}

// Files of the layer every busybox-based image gets. The passwd and group entries are the
// users critest names (pkg/validate/consts.go; nobody for RunAsUserName).
const (
	passwd = "root:x:0:0:root:/root:/bin/sh\n" +
		"www-data:x:33:33:www-data:/var/www:/bin/sh\n" +
		"default-user:x:1000:1000::/home/default-user:/bin/sh\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n"
	group = "root:x:0:\nwww-data:x:33:\ndefault-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\nnogroup:x:65534:\n"
	// Debian's busybox-static has no pgrep and no ipcs applets, which the upstream busybox
	// image critest uses has; these do what critest asks of them (pgrep NAME, ipcs -m).
	pgrep = "#!/bin/sh\n# pgrep NAME: the pids whose command name is NAME.\n" +
		"for d in /proc/[0-9]*; do [ \"$(cat $d/comm 2>/dev/null)\" = \"$1\" ] && echo ${d#/proc/}; done\ntrue\n"
	ipcs = "#!/bin/sh\n# ipcs -m: the System V shared memory segments of this IPC namespace.\ncat /proc/sysvipc/shm\n"
)

// helpers are the stand-in binaries built from e2e/critest/webserver and e2e/critest/nnp.
type helpers struct {
	webserver, nnp []byte
}

// catalog lists every image critest v1.36.0 pulls on Linux (pkg/validate/consts.go,
// security_context_linux.go, multi_container_linux.go, pkg/framework/util.go), except
// test-image-digest@sha256:9700f9…, whose digest is fixed upstream (its test is skipped).
// Each image gets a label of its own, so two names share an image ID only where critest
// wants them to (test-image-tags:1..3, pause:3.9 from two registries).
func catalog(busybox, pause *base, h helpers) []image {
	etc := []file{
		{name: "/etc", dir: true, mode: 0o755},
		{name: "/etc/passwd", mode: 0o644, body: []byte(passwd)},
		{name: "/etc/group", mode: 0o644, body: []byte(group)},
		{name: "/bin", dir: true, mode: 0o755},
		{name: "/bin/pgrep", mode: 0o755, body: []byte(pgrep)},
		{name: "/bin/ipcs", mode: 0o755, body: []byte(ipcs)},
	}
	label := func(name string, cfg map[string]any) map[string]any {
		if cfg == nil {
			cfg = map[string]any{}
		}
		cfg["Labels"] = map[string]string{"e2e.triage.io/critest-image": name}
		return cfg
	}
	web := func(name, bin string, port int, pidFile string) ([]file, map[string]any) {
		files := append([]file{}, etc...)
		for _, d := range []string{"/usr", "/usr/sbin", "/usr/local", "/usr/local/bin", "/var", "/var/run"} {
			files = append(files, file{name: d, dir: true, mode: 0o755})
		}
		files = append(files, file{name: bin, mode: 0o755, body: h.webserver})
		ep := []string{bin, "-name", name, "-port", fmt.Sprint(port)}
		if pidFile != "" {
			ep = append(ep, "-pidfile", pidFile)
		}
		return files, map[string]any{"Entrypoint": ep, "Cmd": nil}
	}
	bb := func(repo string, tags []string, user string) image {
		cfg := map[string]any{}
		if user != "" {
			cfg["User"] = user
		}
		return image{repo: repo, tags: tags, base: busybox, files: etc, config: label(repo, cfg)}
	}
	const tools = "k8s-staging-cri-tools/"
	imgs := []image{
		bb("e2e-test-images/busybox", []string{"1.29-2", "1.36.1-1"}, ""),
		bb(tools+"test-image-user-uid", []string{"latest"}, "1002"),
		bb(tools+"test-image-user-username", []string{"latest"}, "www-data"),
		bb(tools+"test-image-user-uid-group", []string{"latest"}, "1003:1003"),
		bb(tools+"test-image-user-username-group", []string{"latest"}, "www-data:www-data"),
		bb(tools+"test-image-predefined-group", []string{"latest"}, "1000"),
		bb(tools+"test-image-latest", []string{"latest"}, ""),
		bb(tools+"test-image-tag", []string{"test"}, ""),
		bb(tools+"test-image-tags", []string{"1", "2", "3"}, ""),
		{repo: "pause", tags: []string{"3.9"}, base: pause, config: label("pause", nil)},
	}
	// test-image-tag:all is a different image from test-image-tag:test.
	all := bb(tools+"test-image-tag", []string{"all"}, "")
	all.config = label(tools+"test-image-tag:all", map[string]any{})
	imgs = append(imgs, all)
	for _, n := range []string{"1", "2", "3"} {
		imgs = append(imgs, bb(tools+"test-image-"+n, []string{"latest"}, ""))
	}
	for _, w := range []struct {
		repo, tag, name, bin string
		port                 int
		pidFile              string
	}{
		{"e2e-test-images/nginx", "1.14-2", "nginx", "/usr/sbin/nginx", 80, "/var/run/nginx.pid"},
		{tools + "hostnet-nginx-amd64", "latest", "nginx", "/usr/sbin/nginx", 12003, "/var/run/nginx.pid"},
		{"e2e-test-images/httpd", "2.4.39-4", "httpd", "/usr/local/bin/httpd-foreground", 80, ""},
	} {
		files, cfg := web(w.name, w.bin, w.port, w.pidFile)
		imgs = append(imgs, image{repo: w.repo, tags: []string{w.tag}, base: busybox, files: files, config: label(w.repo, cfg)})
	}
	nnp := append(append([]file{}, etc...),
		file{name: "/usr", dir: true, mode: 0o755},
		file{name: "/usr/local", dir: true, mode: 0o755},
		file{name: "/usr/local/bin", dir: true, mode: 0o755},
		// setuid root: the test checks that noNewPrivileges keeps it from raising the euid.
		file{name: "/usr/local/bin/nnp", mode: 0o4755, body: h.nnp})
	imgs = append(imgs, image{repo: "e2e-test-images/nonewprivs", tags: []string{"1.3"}, base: busybox, files: nnp,
		config: label("nonewprivs", map[string]any{"Entrypoint": []string{"/usr/local/bin/nnp"}, "Cmd": nil})})
	return imgs
}
