package plugins

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// peerBlobs is a node's Blobs in a cluster of registries sharing one store: its own directory,
// and on a miss the directories of the other nodes (the cluster's fetch over the peer routes, in
// engine/cluster, does the same through HTTP).
type peerBlobs struct {
	*DirBlobs
	others []*DirBlobs
	puts   int
	fail   error
}

func (p *peerBlobs) Put(ctx context.Context, digest string, wasm []byte) error {
	if p.fail != nil {
		return p.fail
	}
	p.puts++
	return p.DirBlobs.Put(ctx, digest, wasm)
}

func (p *peerBlobs) Get(ctx context.Context, digest string) ([]byte, error) {
	if b, err := p.DirBlobs.Get(ctx, digest); err == nil {
		return b, nil
	}
	for _, o := range p.others {
		if b, err := o.Get(ctx, digest); err == nil {
			return b, p.DirBlobs.Put(ctx, digest, b)
		}
	}
	return nil, ErrNotFound
}

func openDirBlobs(t *testing.T) *DirBlobs {
	d, err := OpenDirBlobs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// With Blobs, the shared store carries a module's record and no byte of it: the bytes are kept
// on the uploading node before the record commits, another registry reads them from there, and
// bytes that do not match the digest are refused.
func TestRegistry_BlobsKeepModuleBytesOutOfTheStore(t *testing.T) {
	st := &mapStore{m: map[string][]byte{}}
	insp := newFakeInspector()
	ctx := context.Background()
	da, db := openDirBlobs(t), openDirBlobs(t)
	ba, bb := &peerBlobs{DirBlobs: da, others: []*DirBlobs{db}}, &peerBlobs{DirBlobs: db, others: []*DirBlobs{da}}
	open := func(b Blobs) *Registry {
		r, err := Open(ctx, Config{Store: st, Inspector: insp, Blobs: b})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	a, b := open(ba), open(bb)

	// A module stored before Blobs (bytes under bin/) stays readable.
	old, err := Open(ctx, Config{Store: st, Inspector: insp})
	if err != nil {
		t.Fatal(err)
	}
	mOld, err := old.Add(ctx, insp.add(taskGuest("old")), AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	old.Close()

	wasm := sizedGuest(3 << 20)
	insp.set(wasm, taskGuest("").info())
	m, err := a.Add(ctx, wasm, AddOptions{Name: "big", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	var storeBytes int
	for k, v := range st.m {
		if strings.HasPrefix(k, binPrefix) && strings.Contains(k, m.Digest) {
			t.Errorf("the store holds %s", k)
		}
		storeBytes += len(v)
	}
	if storeBytes > 64<<10 {
		t.Errorf("the store holds %d bytes for a %d-byte module", storeBytes, len(wasm))
	}
	if !da.Has(m.Digest) || db.Has(m.Digest) {
		t.Fatalf("the uploader holds the bytes: %v; the other: %v", da.Has(m.Digest), db.Has(m.Digest))
	}
	got, err := b.BytesContext(ctx, m.Digest)
	if err != nil || len(got) != len(wasm) {
		t.Fatalf("b reads %d bytes, %v", len(got), err)
	}
	if !db.Has(m.Digest) {
		t.Error("b did not keep the bytes it read")
	}
	if got, err := b.Bytes(mOld.Digest); err != nil || len(got) == 0 {
		t.Fatalf("the module stored before Blobs: %d bytes, %v", len(got), err)
	}
	aps, err := ApartDigests(mapReader(st.m))
	if err != nil || len(aps) != 1 || aps[m.Digest] != int64(len(wasm)) {
		t.Fatalf("ApartDigests = %v, %v", aps, err)
	}

	// Bytes that do not hash to the digest are refused, wherever they come from.
	bad := append([]byte(nil), wasm...)
	bad[len(bad)-1] ^= 0xff
	if err := os.WriteFile(filepath.Join(db.dir, strings.TrimPrefix(m.Digest, DigestPrefix)+".wasm"), bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Bytes(m.Digest); err == nil || !strings.Contains(err.Error(), "do not match its digest") {
		t.Fatalf("corrupt bytes: %v", err)
	}

	// Pushing the module again keeps its bytes again (they may have been lost everywhere).
	db.Drop(m.Digest)
	da.Drop(m.Digest)
	if _, err := b.Bytes(m.Digest); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bytes held nowhere: %v", err)
	}
	if _, err := b.Add(ctx, wasm, AddOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Bytes(m.Digest); err != nil {
		t.Fatalf("after the push again: %v", err)
	}

	// A delete drops the deleting node's copy.
	if _, err := a.DeleteRef(ctx, "big", nil); err != nil {
		t.Fatal(err)
	}
	if da.Has(m.Digest) {
		t.Error("the deleting node kept the bytes")
	}
}

// An Add whose bytes cannot be kept registers nothing.
func TestRegistry_BlobsPutFailingRegistersNothing(t *testing.T) {
	st := &mapStore{m: map[string][]byte{}}
	insp := newFakeInspector()
	bl := &peerBlobs{DirBlobs: openDirBlobs(t), fail: errors.New("no other node took a copy")}
	r, err := Open(context.Background(), Config{Store: st, Inspector: insp, Blobs: bl})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Add(context.Background(), insp.add(taskGuest("x")), AddOptions{Name: "x", Version: "1.0.0"}); err == nil || !strings.Contains(err.Error(), "no other node took a copy") {
		t.Fatalf("Add = %v", err)
	}
	if len(st.m) != 0 || len(r.List()) != 0 {
		t.Fatalf("the store holds %d keys, the registry %d modules", len(st.m), len(r.List()))
	}
}
