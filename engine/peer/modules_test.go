package peer_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/lumenflow/lumen/engine/peer"
	"github.com/lumenflow/lumen/engine/wire"
)

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// A node's module bytes come back checked: bytes that do not hash to the digest asked for (a
// corrupt disk, a lying or buggy peer) are refused as a bad answer, so the caller asks another
// node; a node without them answers not_found.
func TestClient_ModuleBytesRefusesBytesThatDoNotMatchTheDigest(t *testing.T) {
	good := []byte("\x00asm\x01\x00\x00\x00 the module")
	d := digestOf(good)
	missing := digestOf([]byte("another module"))
	bad := append([]byte(nil), good...)
	bad[len(bad)-1] ^= 1
	honest := serve(t, &node{modules: map[string][]byte{d: good}}, peer.Config{})
	corrupt := serve(t, &node{modules: map[string][]byte{d: bad}}, peer.Config{})
	c := peer.NewClient(nil, peer.Credential(joinToken))
	ctx := context.Background()

	got, err := c.ModuleBytes(ctx, honest.URL, d, 1<<20)
	if err != nil || string(got) != string(good) {
		t.Fatalf("honest node: %q, %v", got, err)
	}
	if _, err := c.ModuleBytes(ctx, corrupt.URL, d, 1<<20); !errors.Is(err, peer.ErrBadAnswer) || !strings.Contains(err.Error(), "do not match their digest") {
		t.Fatalf("corrupt node: %v, want a bad answer", err)
	}
	if _, err := c.ModuleBytes(ctx, honest.URL, missing, 1<<20); err == nil {
		t.Fatal("a module the node lacks was served")
	} else if we, ok := peer.IsAnswer(err); !ok || we.Kind != wire.KindNotFound {
		t.Fatalf("missing module: %v, want a not_found answer", err)
	}
	if _, err := c.ModuleBytes(ctx, honest.URL, d, 4); err == nil {
		t.Fatal("a module over the cap was accepted")
	}
	if _, err := c.ModuleBytes(ctx, honest.URL, "sha256:XYZ", 1<<20); err == nil {
		t.Fatal("a malformed digest was asked for")
	}
}

// A node keeps module bytes sent to it only when they hash to the digest of the path.
func TestServer_KeepModuleBytesChecksTheDigest(t *testing.T) {
	n := &node{}
	srv := serve(t, n, peer.Config{})
	c := peer.NewClient(nil, peer.Credential(joinToken))
	wasm := []byte("\x00asm\x01\x00\x00\x00 kept")
	d := digestOf(wasm)
	if err := c.KeepModuleBytes(context.Background(), srv.URL, d, wasm); err != nil {
		t.Fatal(err)
	}
	if err := c.KeepModuleBytes(context.Background(), srv.URL, digestOf([]byte("other")), wasm); err == nil {
		t.Fatal("bytes under another digest were kept")
	} else if we, ok := peer.IsAnswer(err); !ok || we.Kind.Status() != http.StatusBadRequest {
		t.Fatalf("mismatched bytes: %v, want bad_input", err)
	}
	if want := []any{[]any{"keep", d, len(wasm)}}; !reflect.DeepEqual(n.got, want) {
		t.Fatalf("the handler got %v, want %v", n.got, want)
	}
}
