package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lumenflow/lumen/engine/peer"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/plugins"
)

// fakeModulePeer answers GET /peer/<version>/modules/<digest> with body, as a node of the cluster
// would, and counts the requests.
func fakeModulePeer(t *testing.T, body []byte, asked *atomic.Int32) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		w.Header().Set(peer.VersionHeader, wire.Version)
		if !strings.HasPrefix(r.URL.Path, peer.Prefix+"/modules/sha256:") || r.Method != http.MethodGet {
			http.Error(w, "unexpected", http.StatusTeapot)
			return
		}
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// A peer that answers bytes not matching the digest is refused and the next node is asked; with
// no honest node, the fetch fails with ErrModuleUnavailable naming the module.
func TestModuleBytes_CorruptPeerAnswerIsRefused(t *testing.T) {
	good := []byte("\x00asm\x01\x00\x00\x00 module bytes")
	sum := sha256.Sum256(good)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	bad := append([]byte(nil), good...)
	bad[9] ^= 0x20
	var badAsked, goodAsked atomic.Int32
	liar, honest := fakeModulePeer(t, bad, &badAsked), fakeModulePeer(t, good, &goodAsked)

	local, err := plugins.OpenDirBlobs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := &moduleBytes{n: &Node{peer: peer.NewClient(nil, "cred")}, local: local}
	ctx := context.Background()

	b, err := m.fetchFrom(ctx, []nodeAPI{{"liar", liar}, {"honest", honest}}, digest)
	if err != nil || string(b) != string(good) {
		t.Fatalf("fetch = %q, %v; want the honest node's bytes", b, err)
	}
	if badAsked.Load() != 1 || goodAsked.Load() != 1 {
		t.Fatalf("asked the liar %d times, the honest node %d", badAsked.Load(), goodAsked.Load())
	}

	_, err = m.fetchFrom(ctx, []nodeAPI{{"liar", liar}}, digest)
	if !errors.Is(err, ErrModuleUnavailable) {
		t.Fatalf("only a liar: %v, want ErrModuleUnavailable", err)
	}
	for _, want := range []string{"module bytes unavailable: no reachable node holds " + digest, "liar:", "do not match their digest"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if k, _ := wire.KindOf(err); k != wire.KindUnavailable {
		t.Errorf("kind %q, want unavailable", k)
	}
	if local.Has(digest) {
		t.Error("fetchFrom kept bytes itself; fetch keeps them")
	}
}
