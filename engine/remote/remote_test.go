package remote

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/lumenflow/lumen/engine/objects"
	"github.com/lumenflow/lumen/engine/peer"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/sdk/abi"
)

func TestRewriteRefs(t *testing.T) {
	m := map[int64]int64{3: 41, 12: 7}
	for _, c := range []struct{ in, want string }{
		{`{"R":{"$ref":3},"S":"x"}`, `{"R":{"$ref":41},"S":"x"}`},
		{`[{"$ref": 12},{"$ref":3},{"$ref":4}]`, `[{"$ref": 7},{"$ref":41},{"$ref":4}]`},
		{`{"$ref":33}`, `{"$ref":33}`}, // 33 is not 3
		{`{"$ref":}`, `{"$ref":}`},     // no number
		{`"$ref":3`, `"$ref":41`},      // bare, at the end
		{`no refs at all`, `no refs at all`},
		{`{"$ref":99999999999999999999}`, `{"$ref":99999999999999999999}`}, // too long to be a handle
	} {
		if got := string(rewriteRefs([]byte(c.in), m)); got != c.want {
			t.Errorf("rewriteRefs(%s) = %s, want %s", c.in, got, c.want)
		}
	}
}

// FuzzRefsHeader feeds arbitrary Lumen-Refs values and values to the code that reads what another
// node sends: it must never panic, and a rewrite must only touch the numbers of known refs.
func FuzzRefsHeader(f *testing.F) {
	f.Add("1,2,3", []byte(`{"a":{"$ref":1},"b":[{"$ref":2}]}`))
	f.Add("", []byte(`"$ref":`))
	f.Add("9", []byte(`{"$ref":  9}{"$ref":9`))
	f.Fuzz(func(t *testing.T, header string, value []byte) {
		refs, err := wire.ParseRefs(header)
		if err != nil {
			return
		}
		if len(refs) > 0 {
			back, err := wire.ParseRefs(wire.FormatRefs(refs))
			if err != nil || len(back) != len(refs) {
				t.Fatalf("format/parse round trip: %v %v", back, err)
			}
		}
		m := map[int64]int64{}
		for i, r := range refs {
			m[r] = int64(i + 1)
		}
		out := rewriteRefs(value, m)
		if !bytes.Contains(value, refMarker) && !bytes.Equal(out, value) {
			t.Fatalf("a value without refs changed: %q -> %q", value, out)
		}
		if bytes.Count(out, refMarker) != bytes.Count(value, refMarker) {
			t.Fatalf("the number of refs changed: %q -> %q", value, out)
		}
	})
}

// holder serves one object the way a node's peer routes do, with the given checksum header.
func holder(t *testing.T, value []byte, sum, refs string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set(peer.VersionHeader, wire.Version)
		if !strings.HasPrefix(r.URL.Path, peer.Prefix+"/objects/5") {
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":{"kind":"not_found","message":"no object"}}`))
			return
		}
		w.Header().Set(wire.ChecksumHeader, sum)
		if refs != "" {
			w.Header().Set(wire.RefsHeader, refs)
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(value)))
		w.Write(value)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// pullPlane is the part of a plane pullFrom uses: an object store and a peer client.
func pullPlane() *Plane {
	return &Plane{d: Deps{Ctx: context.Background(), Log: slog.Default(),
		Objects: objects.New(0), Peer: peer.NewClient(http.DefaultClient, "tok")}}
}

func TestPullFromChecksAndMapsRefs(t *testing.T) {
	value := []byte(`{"inner":{"$ref":9},"n":1}`)
	e := pullPlane()
	ctx := context.Background()

	good := holder(t, value, objects.Checksum(value), "9")
	loc := objects.Location{Node: "w1", API: good.URL, Job: "j", Handle: 5, Size: int64(len(value)), Sum: objects.Checksum(value), Owned: true}
	h := e.d.Objects.Remote("j", &loc)
	o, _ := e.d.Objects.Lookup("j", h)
	got, err := e.pullFrom(ctx, h, o, loc)
	if err != nil {
		t.Fatal(err)
	}
	// The inner ref is now an object of this node standing for handle 9 on w1.
	child, cl := e.d.Objects.Locate(int64(mustRef(t, got)))
	if child == nil || cl == nil || cl.Node != "w1" || cl.Handle != 9 || cl.Owned {
		t.Fatalf("inner ref %s: %+v", got, cl)
	}
	if n := e.PulledBytes(); n != int64(len(value)) {
		t.Errorf("pulled %d bytes, want %d", n, len(value))
	}
	// A second fetch maps the inner ref to the same object.
	again, err := e.pullFrom(ctx, h, o, loc)
	if err != nil || !bytes.Equal(again, got) {
		t.Fatalf("second fetch: %s %v", again, err)
	}

	// Bytes that do not match what the sender says, or what was recorded when it was made.
	bad := holder(t, value, "00000000", "")
	if _, err := e.pullFrom(ctx, h, o, objects.Location{Node: "w1", API: bad.URL, Job: "j", Handle: 5, Size: -1}); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("a wrong sender checksum: %v", err)
	}
	changed := holder(t, []byte(`{"inner":{"$ref":9},"n":2}`), objects.Checksum([]byte(`{"inner":{"$ref":9},"n":2}`)), "")
	if _, err := e.pullFrom(ctx, h, o, objects.Location{Node: "w1", API: changed.URL, Job: "j", Handle: 5, Size: -1, Sum: objects.Checksum(value)}); err == nil || !strings.Contains(err.Error(), "when it was made") {
		t.Errorf("a value changed since it was made: %v", err)
	}
	// A holder that no longer has it: lost, not retried for ever.
	if _, err := e.pullFrom(ctx, h, o, objects.Location{Node: "w1", API: good.URL, Job: "j", Handle: 6, Size: -1}); !errors.Is(err, errLost) {
		t.Errorf("a missing object: %v", err)
	}
	// A bad refs header is an error, not a panic.
	junk := holder(t, value, objects.Checksum(value), "9,x")
	if _, err := e.pullFrom(ctx, h, o, objects.Location{Node: "w1", API: junk.URL, Job: "j", Handle: 5, Size: -1}); err == nil {
		t.Errorf("a bad %s was accepted", wire.RefsHeader)
	}
}

func mustRef(t *testing.T, b []byte) int64 {
	t.Helper()
	i := bytes.Index(b, refMarker)
	if i < 0 {
		t.Fatalf("no ref in %s", b)
	}
	rest := b[i+len(refMarker):]
	j := bytes.IndexByte(rest, '}')
	n, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// An object made by put on a node that is lost cannot be rebuilt, and says so.
func TestRebuildWithoutLineage(t *testing.T) {
	e := pullPlane()
	h := e.d.Objects.Remote("j", &objects.Location{Node: "w9", API: "http://127.0.0.1:1", Job: "j", Handle: 3, Size: -1})
	o, _ := e.d.Objects.Lookup("j", h)
	_, err := e.rebuild(context.Background(), h, o, "w9")
	var ae *abi.Error
	if !errors.As(err, &ae) || !strings.Contains(ae.Message, "cannot be rebuilt") || !strings.Contains(ae.Message, "w9") {
		t.Fatalf("rebuild without lineage: %v", err)
	}
}

// The TakeRefs check: a placed task's refs must each say where they live, on a member node.
func TestTakeRefsRefusesUnknownLocations(t *testing.T) {
	e := pullPlane()
	e.d.NodeID = "self"
	req := &abi.TaskRequest{Function: "f", Args: []byte(`{"$ref":4}`), Refs: []int64{4}}
	for _, c := range []struct {
		name   string
		remote []wire.RemoteRef
		want   string
	}{
		{"none", nil, "does not say where"},
		{"zero handle", []wire.RemoteRef{{Ref: 4, Node: "w1"}}, "positive"},
		{"no node", []wire.RemoteRef{{Ref: 4, Handle: 2}}, "node is required"},
		{"here, but missing", []wire.RemoteRef{{Ref: 4, Node: "self", Handle: 2}}, "no object 2"},
	} {
		_, _, err := e.TakeRefs("j", req, c.remote)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
	h, _ := e.d.Objects.Put("j", []byte("x"))
	local, made, err := e.TakeRefs("j", req, []wire.RemoteRef{{Ref: 4, Node: "self", Handle: h}})
	if err != nil || len(made) != 0 || local.Refs[0] != h || string(local.Args) != `{"$ref":`+strconv.FormatInt(h, 10)+`}` {
		t.Fatalf("a ref that lives here: %+v %v %v", local, made, err)
	}
}
