package api_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/engine/peer"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/internal/guestbuild"
)

// The public API and the peer routes admit disjoint credentials: an API token never reaches a
// peer route, the node credential never reaches the public API, and a token holder cannot pass
// for a node with the headers nodes once sent through the public API (refused with 400, before
// anything runs).
func TestAPI_PublicAndPeerRoutesAreApart(t *testing.T) {
	c, _, dir := setup(t)
	wasm, err := os.ReadFile(guestbuild.Go(t, "../testdata/guest"))
	if err != nil {
		t.Fatal(err)
	}
	c.json("POST", "/v1/modules?name=svc&version=1.0.0", wasm, 201)
	join, err := os.ReadFile(filepath.Join(dir, engine.JoinTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	cred := peer.Credential(strings.TrimSpace(string(join)))

	// The node credential on the public API: not a token it knows.
	client{t: t, url: c.url, token: cred}.json("GET", "/v1/modules", nil, 401)
	// API tokens, no credential, the join token itself and the credential on the peer routes.
	c.json("GET", "/peer/v1/cluster/self", nil, 403)
	client{t: t, url: c.url}.json("GET", "/peer/v1/cluster/self", nil, 401)
	client{t: t, url: c.url, token: strings.TrimSpace(string(join))}.json("GET", "/peer/v1/cluster/self", nil, 403)
	self, err := peer.NewClient(nil, cred).Self(context.Background(), c.url)
	if err != nil || self.ID != "local" || self.StateHash == "" {
		t.Fatalf("self over the peer routes: %+v %v", self, err)
	}

	// A placed-looking task on the public API is refused, and nothing runs or is stored.
	task := []byte(`{"module":"svc","function":"square","args":4,"grants":["objects","tasks","actors"]}`)
	for _, h := range []struct{ name, value, method, path string }{
		{"Lumen-Placed", "1", "POST", "/v1/tasks"},
		{"Lumen-Placed", "1", "POST", "/v1/actors"},
		{"Lumen-Actor-Owner", "n1/1/b", "DELETE", "/v1/actors/1"},
		{"Lumen-Remote-Refs", `[{"ref":1,"node":"n1","handle":1}]`, "POST", "/v1/actors/1/call/incr"},
	} {
		req, _ := http.NewRequest(h.method, c.url+h.path, strings.NewReader(string(task)))
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set(h.name, h.value)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s %s with %s: %d, want 400", h.method, h.path, h.name, resp.StatusCode)
		}
	}
	if st := c.json("GET", "/v1/status", nil, 200); st["objects"].(float64) != 0 {
		t.Fatalf("a refused placed task left objects: %v", st["objects"])
	}

	// The same task without the header runs like any public task; its value comes without the
	// peer routes' headers, which the peer route sets.
	ref := int64(c.json("POST", "/v1/tasks", task, 201)["ref"].(float64))
	req, _ := http.NewRequest("GET", c.url+"/v1/objects/"+itoa(ref), nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get(wire.ChecksumHeader) != "" || resp.Header.Get(peer.VersionHeader) != "" {
		t.Fatalf("public get: %d %v", resp.StatusCode, resp.Header)
	}
	v, err := peer.NewClient(nil, cred).Object(context.Background(), c.url, "", ref, 0, -1)
	if err != nil || string(v.Value) != "16" || v.Meta.Checksum == "" {
		t.Fatalf("peer get: %+v %v", v, err)
	}
}
