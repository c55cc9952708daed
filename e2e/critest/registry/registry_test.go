package registry

import (
	"io"
	"net"
	"net/http"
	"testing"
)

func TestServe(t *testing.T) {
	r := New()
	blob := r.Put([]byte("layer"))
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)
	md := r.Put(manifest)
	if err := r.Tag("e2e-test-images/busybox", "1.29-2", md); err != nil {
		t.Fatal(err)
	}
	if err := r.Tag("x", "y", "sha256:00"); err == nil {
		t.Error("Tag of a missing manifest: no error")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := r.Serve(l)
	t.Cleanup(func() { _ = srv.Close() })
	base := "http://" + l.Addr().String()

	for _, tc := range []struct {
		name, method, path string
		status             int
		digest, mediaType  string
		body               string
	}{
		{"api root", "GET", "/v2/", 200, "", "application/json", "{}"},
		{"manifest by tag", "GET", "/v2/e2e-test-images/busybox/manifests/1.29-2", 200, md,
			"application/vnd.oci.image.manifest.v1+json", string(manifest)},
		{"manifest by tag, HEAD", "HEAD", "/v2/e2e-test-images/busybox/manifests/1.29-2", 200, md,
			"application/vnd.oci.image.manifest.v1+json", ""},
		{"manifest by digest", "GET", "/v2/e2e-test-images/busybox/manifests/" + md, 200, md,
			"application/vnd.oci.image.manifest.v1+json", string(manifest)},
		{"blob", "GET", "/v2/e2e-test-images/busybox/blobs/" + blob, 200, blob, "application/octet-stream", "layer"},
		{"blob, HEAD", "HEAD", "/v2/e2e-test-images/busybox/blobs/" + blob, 200, blob, "application/octet-stream", ""},
		{"unknown tag", "GET", "/v2/e2e-test-images/busybox/manifests/nope", 404, "", "", ""},
		{"a blob is not a manifest", "GET", "/v2/e2e-test-images/busybox/manifests/" + blob, 404, "", "", ""},
		{"unknown blob", "GET", "/v2/x/blobs/sha256:00", 404, "", "", ""},
		{"push refused", "PUT", "/v2/x/manifests/y", 405, "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, base+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.status, body)
			}
			if tc.status != 200 {
				return
			}
			if got := resp.Header.Get("Docker-Content-Digest"); got != tc.digest {
				t.Errorf("Docker-Content-Digest %q, want %q", got, tc.digest)
			}
			if got := resp.Header.Get("Content-Type"); got != tc.mediaType {
				t.Errorf("Content-Type %q, want %q", got, tc.mediaType)
			}
			if string(body) != tc.body {
				t.Errorf("body %q, want %q", body, tc.body)
			}
			if tc.method == "HEAD" && resp.ContentLength <= 0 {
				t.Errorf("HEAD: Content-Length %d", resp.ContentLength)
			}
		})
	}
}
