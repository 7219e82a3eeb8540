package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Blobs keeps module bytes apart from the Store, by digest: with Config.Blobs set, a module's
// record in the Store says its bytes are kept here, and the Store (the cluster's raft log, in the
// engine) carries its digest and record only. Implementations must be safe for concurrent use.
type Blobs interface {
	// Put keeps wasm, whose sha256 digest is digest, before the module's record commits; it
	// returns once the bytes are as durable as the implementation promises (the cluster's: on
	// this node's disk and another node's).
	Put(ctx context.Context, digest string, wasm []byte) error
	// Get returns the bytes of digest: an error wrapping ErrNotFound when they are held nowhere
	// the implementation looks. The registry checks them against the digest.
	Get(ctx context.Context, digest string) ([]byte, error)
	// Drop forgets this holder's copy of digest (an Add that did not commit); a missing one is
	// not an error.
	Drop(digest string) error
}

// DirBlobs is Blobs in a directory of this machine: one file per module, named by the hex of its
// digest, written to a temporary file, synced and renamed, so a crash leaves the whole file or
// none. It is safe for concurrent use; the caller checks what Get returns against the digest.
type DirBlobs struct{ dir string }

// OpenDirBlobs opens (creating it, mode 0700) the directory dir and removes the temporary files
// a crash left there.
func OpenDirBlobs(dir string) (*DirBlobs, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("plugins: module bytes directory: %w", err)
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, "*.tmp"))
	for _, t := range tmps {
		os.Remove(t)
	}
	return &DirBlobs{dir: dir}, nil
}

func (d *DirBlobs) path(digest string) (string, error) {
	if err := checkDigest(digest); err != nil {
		return "", err
	}
	return filepath.Join(d.dir, strings.TrimPrefix(digest, DigestPrefix)+".wasm"), nil
}

// Put writes wasm unless a file of that size is there already (then it only touches it: its
// modification time says when it was last put). It does not check the digest: see CheckDigest.
func (d *DirBlobs) Put(ctx context.Context, digest string, wasm []byte) error {
	p, err := d.path(digest)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if st, err := os.Stat(p); err == nil && st.Size() == int64(len(wasm)) {
		now := time.Now()
		return os.Chtimes(p, now, now)
	}
	f, err := os.CreateTemp(d.dir, "*.tmp")
	if err != nil {
		return fmt.Errorf("plugins: keep module %s: %w", digest, err)
	}
	tmp := f.Name()
	_, err = f.Write(wasm)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("plugins: keep module %s: %w", digest, err)
	}
	if dir, err := os.Open(d.dir); err == nil { // the rename is durable once the directory is
		dir.Sync()
		dir.Close()
	}
	return nil
}

// Get reads the file of digest; ErrNotFound when there is none.
func (d *DirBlobs) Get(_ context.Context, digest string) ([]byte, error) {
	p, err := d.path(digest)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: bytes of module %s are not on this node", ErrNotFound, digest)
	}
	if err != nil {
		return nil, fmt.Errorf("plugins: read module %s: %w", digest, err)
	}
	return b, nil
}

// Has says whether the file of digest is there.
func (d *DirBlobs) Has(digest string) bool {
	p, err := d.path(digest)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// PutSince reports when digest was last put here (zero when it is not here).
func (d *DirBlobs) PutSince(digest string) time.Time {
	p, err := d.path(digest)
	if err != nil {
		return time.Time{}
	}
	st, err := os.Stat(p)
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}

// Drop removes the file of digest.
func (d *DirBlobs) Drop(digest string) error {
	p, err := d.path(digest)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("plugins: drop module %s: %w", digest, err)
	}
	return nil
}

// CheckDigest says whether wasm's sha256 digest is digest: nil, or an error naming both.
func CheckDigest(digest string, wasm []byte) error {
	sum := sha256.Sum256(wasm)
	if got := DigestPrefix + hex.EncodeToString(sum[:]); got != digest {
		return fmt.Errorf("plugins: %d bytes hash to %s, not %s", len(wasm), got, digest)
	}
	return nil
}

// ApartDigests returns the digests of the modules in st whose bytes are kept in Blobs, with
// their sizes: what a node of a cluster may fetch ahead of a call.
func ApartDigests(st StoreReader) (map[string]int64, error) {
	ix := newIndex()
	if err := loadRecords(st, ix); err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for d, rec := range ix.mods {
		if rec.Apart {
			out[d] = rec.Size
		}
	}
	return out, nil
}
