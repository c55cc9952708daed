// Package registry is a read-only OCI distribution server held in memory: enough of the
// distribution API (GET /v2/, manifests by tag or digest, blobs; HEAD for each) for containerd
// to resolve and pull images, so critest can run with no network. Nothing is pushed over HTTP:
// the test puts blobs and tags in with Put and Tag before it serves.
package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Registry holds content by digest and tags by repository. Its methods may be called from
// any goroutine.
type Registry struct {
	mu    sync.Mutex
	blobs map[string][]byte            // guarded by mu; digest ("sha256:…") → content
	tags  map[string]map[string]string // guarded by mu; repository → tag → manifest digest
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{blobs: map[string][]byte{}, tags: map[string]map[string]string{}}
}

// Put stores b and returns its digest.
func (r *Registry) Put(b []byte) string {
	sum := sha256.Sum256(b)
	d := "sha256:" + hex.EncodeToString(sum[:])
	r.mu.Lock()
	defer r.mu.Unlock()
	r.blobs[d] = b
	return d
}

// Tag points repo:tag at the manifest with the given digest, which must have been Put.
func (r *Registry) Tag(repo, tag, digest string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.blobs[digest]; !ok {
		return fmt.Errorf("tag %s:%s: no manifest %s", repo, tag, digest)
	}
	if r.tags[repo] == nil {
		r.tags[repo] = map[string]string{}
	}
	r.tags[repo][tag] = digest
	return nil
}

// Serve answers the distribution API on l until the listener is closed. It returns the
// server so the caller can Close it.
func (r *Registry) Serve(l net.Listener) *http.Server {
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }() // returns ErrServerClosed or the listener's error on Close
	return srv
}

var _ http.Handler = (*Registry)(nil)

// ServeHTTP implements GET and HEAD of /v2/, /v2/<name>/manifests/<ref> and /v2/<name>/blobs/<digest>.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		apiError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "read-only registry")
		return
	}
	p := strings.TrimPrefix(req.URL.Path, "/v2/")
	if p == req.URL.Path {
		http.NotFound(w, req)
		return
	}
	if p == "" {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
		return
	}
	if name, ref, ok := cutLast(p, "/manifests/"); ok {
		r.manifest(w, req, name, ref)
		return
	}
	if _, digest, ok := cutLast(p, "/blobs/"); ok {
		b, ok := r.blob(digest)
		if !ok {
			apiError(w, http.StatusNotFound, "BLOB_UNKNOWN", "blob unknown: "+digest)
			return
		}
		write(w, req, "application/octet-stream", digest, b)
		return
	}
	apiError(w, http.StatusNotFound, "NAME_UNKNOWN", "unknown path "+req.URL.Path)
}

func (r *Registry) manifest(w http.ResponseWriter, req *http.Request, name, ref string) {
	digest := ref
	if !strings.Contains(ref, ":") {
		r.mu.Lock()
		digest = r.tags[name][ref]
		r.mu.Unlock()
	}
	b, ok := r.blob(digest)
	if !ok {
		apiError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", fmt.Sprintf("manifest unknown: %s:%s", name, ref))
		return
	}
	var m struct {
		MediaType string `json:"mediaType"`
	}
	if err := json.Unmarshal(b, &m); err != nil || m.MediaType == "" {
		apiError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", fmt.Sprintf("%s is not a manifest", digest))
		return
	}
	write(w, req, m.MediaType, digest, b)
}

func (r *Registry) blob(digest string) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.blobs[digest]
	return b, ok
}

// write answers with content b; HEAD gets the headers only. Range requests (resumed blob
// downloads) are served by http.ServeContent.
func write(w http.ResponseWriter, req *http.Request, mediaType, digest string, b []byte) {
	w.Header().Set("Content-Type", mediaType)
	w.Header().Set("Docker-Content-Digest", digest)
	w.Header().Set("Etag", `"`+digest+`"`)
	if req.Method == http.MethodHead {
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(http.StatusOK)
		return
	}
	http.ServeContent(w, req, "", time.Time{}, bytes.NewReader(b))
}

// apiError writes a distribution API error body.
func apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

// cutLast splits s around the last sep; repository names may contain slashes.
func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i <= 0 || i+len(sep) == len(s) {
		return "", "", false
	}
	return s[:i], s[i+len(sep):], true
}
