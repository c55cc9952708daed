package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/triage-runtime/triage/e2e/critest/registry"
	"github.com/triage-runtime/triage/e2e/harness"
)

// file is one entry of a layer added on top of a base image.
type file struct {
	name string // absolute path in the image
	mode int64  // permission bits, with setuid; a directory when body is nil and dir is set
	dir  bool
	body []byte
}

// image is one reference critest pulls, as its repository in the registry (the host part is
// what hosts.toml maps to the registry) and tags.
type image struct {
	repo   string   // e.g. e2e-test-images/busybox, k8s-staging-cri-tools/test-image-tags
	tags   []string // every tag points to the same manifest
	base   *base
	files  []file         // one extra layer; none when empty
	config map[string]any // merged into the image config's "config"
}

// base is a single-manifest OCI archive (BusyboxTar, PauseTar) split into its parts.
type base struct {
	config  map[string]any
	layers  [][]byte         // compressed layer blobs
	descs   []map[string]any // their manifest descriptors
	diffIDs []any
}

// loadBase reads an OCI archive as e2e/setup.sh writes them.
func loadBase(archive string) (*base, error) {
	blobs, err := harness.ReadTar(archive)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", archive, err)
	}
	var index struct {
		Manifests []struct {
			Digest string `json:"digest"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(blobs["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		return nil, fmt.Errorf("%s: want an index.json with one manifest (%v)", archive, err)
	}
	var manifest struct {
		Config struct {
			Digest string `json:"digest"`
		} `json:"config"`
		Layers []map[string]any `json:"layers"`
	}
	if err := json.Unmarshal(blobs[harness.BlobPath(index.Manifests[0].Digest)], &manifest); err != nil {
		return nil, fmt.Errorf("%s: manifest: %w", archive, err)
	}
	b := &base{descs: manifest.Layers}
	if err := json.Unmarshal(blobs[harness.BlobPath(manifest.Config.Digest)], &b.config); err != nil {
		return nil, fmt.Errorf("%s: config: %w", archive, err)
	}
	rootfs, _ := b.config["rootfs"].(map[string]any)
	b.diffIDs, _ = rootfs["diff_ids"].([]any)
	for _, d := range manifest.Layers {
		digest, _ := d["digest"].(string)
		layer, ok := blobs[harness.BlobPath(digest)]
		if !ok {
			return nil, fmt.Errorf("%s: no layer %s", archive, digest)
		}
		b.layers = append(b.layers, layer)
	}
	return b, nil
}

// push writes img's blobs and manifest into reg and tags it.
func push(reg *registry.Registry, img image) error {
	cfg, err := clone(img.base.config)
	if err != nil {
		return err
	}
	inner, _ := cfg["config"].(map[string]any)
	if inner == nil {
		inner = map[string]any{}
		cfg["config"] = inner
	}
	for k, v := range img.config {
		inner[k] = v
	}
	layers := append([]map[string]any{}, img.base.descs...)
	diffIDs := append([]any{}, img.base.diffIDs...)
	for _, l := range img.base.layers {
		reg.Put(l)
	}
	if len(img.files) > 0 {
		raw, gz, err := layer(img.files)
		if err != nil {
			return fmt.Errorf("%s: %w", img.repo, err)
		}
		diffIDs = append(diffIDs, sha(raw))
		layers = append(layers, map[string]any{
			"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
			"digest":    reg.Put(gz),
			"size":      len(gz),
		})
	}
	cfg["rootfs"] = map[string]any{"type": "layers", "diff_ids": diffIDs}
	cb, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	mb, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": reg.Put(cb), "size": len(cb)},
		"layers":        layers,
	})
	if err != nil {
		return err
	}
	md := reg.Put(mb)
	for _, t := range img.tags {
		if err := reg.Tag(img.repo, t, md); err != nil {
			return err
		}
	}
	return nil
}

// layer returns a tar of files (parents first, mtime 0, owned by root) and its gzip.
func layer(files []file) (raw, gz []byte, err error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: strings.TrimPrefix(f.name, "/"), Mode: f.mode, Typeflag: tar.TypeReg, Size: int64(len(f.body)), Format: tar.FormatPAX}
		if f.dir {
			h.Name, h.Typeflag, h.Size = h.Name+"/", tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, nil, err
		}
		if _, err := tw.Write(f.body); err != nil {
			return nil, nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, nil, err
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	if _, err := zw.Write(buf.Bytes()); err != nil {
		return nil, nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, nil, err
	}
	return buf.Bytes(), z.Bytes(), nil
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func clone(m map[string]any) (map[string]any, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var c map[string]any
	return c, json.Unmarshal(b, &c)
}
