package harness

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// DeriveImage writes to dst an OCI archive of a new image named name: the single-manifest image
// of the OCI archive src (as e2e/setup.sh builds BusyboxTar and PauseTar) with its config changed
// by edit. The layers stay; the config, and so the image ID, is new. Use it when a test needs an
// image that is not just another name for an existing one: CRI resolves every name of one image
// ID to the same (first) reference.
func DeriveImage(src, dst, name string, edit func(config map[string]any)) error {
	blobs, err := ReadTar(src)
	if err != nil {
		return fmt.Errorf("derive image from %s: %w", src, err)
	}
	var index struct {
		SchemaVersion int              `json:"schemaVersion"`
		Manifests     []map[string]any `json:"manifests"`
	}
	if err := json.Unmarshal(blobs["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		return fmt.Errorf("derive image from %s: want an index.json with one manifest (%v)", src, err)
	}
	manifestDigest, _ := index.Manifests[0]["digest"].(string)
	var manifest map[string]any
	if err := json.Unmarshal(blobs[BlobPath(manifestDigest)], &manifest); err != nil {
		return fmt.Errorf("derive image from %s: manifest %s: %w", src, manifestDigest, err)
	}
	configDesc, _ := manifest["config"].(map[string]any)
	configDigest, _ := configDesc["digest"].(string)
	var config map[string]any
	if err := json.Unmarshal(blobs[BlobPath(configDigest)], &config); err != nil {
		return fmt.Errorf("derive image from %s: config %s: %w", src, configDigest, err)
	}
	edit(config)

	addBlob := func(v any) (digest string, size int, err error) {
		b, err := json.Marshal(v)
		if err != nil {
			return "", 0, err
		}
		sum := sha256.Sum256(b)
		digest = "sha256:" + hex.EncodeToString(sum[:])
		blobs[BlobPath(digest)] = b
		return digest, len(b), nil
	}
	if configDesc["digest"], configDesc["size"], err = addBlob(config); err != nil {
		return err
	}
	desc := index.Manifests[0]
	if desc["digest"], desc["size"], err = addBlob(manifest); err != nil {
		return err
	}
	tag := name[strings.LastIndex(name, ":")+1:]
	desc["annotations"] = map[string]string{"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag}
	if blobs["index.json"], err = json.Marshal(index); err != nil {
		return err
	}
	return writeTar(dst, blobs)
}

// BlobPath is where an OCI layout keeps the blob of digest.
func BlobPath(digest string) string { return path.Join("blobs", strings.Replace(digest, ":", "/", 1)) }

// ReadTar returns the regular files of a tar archive by name (without a leading "./").
func ReadTar(file string) (map[string][]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		files[strings.TrimPrefix(h.Name, "./")] = b
	}
}

// writeTar writes files into a tar archive, parent folders first.
func writeTar(file string, files map[string][]byte) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for name := range files {
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for _, d := range []string{"blobs", "blobs/sha256"} {
		if dirs[d] {
			if err := tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
				return err
			}
		}
	}
	for name, b := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(b))}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(file, buf.Bytes(), 0o644)
}
