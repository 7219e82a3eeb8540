package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/engine/api"
	"github.com/lumenflow/lumen/internal/guestbuild"
)

// setupRoomy is setup on a node that offers 16 cpus whatever its cores, so that a job spinning
// to stay RUNNING leaves room for the calls made in its scope.
func setupRoomy(t *testing.T) (client, *api.Server, string) {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	eng, err := engine.Open(ctx, engine.Config{DataDir: dir, Resources: map[string]float64{"cpu": 16}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(ctx) })
	srv, err := api.New(eng, api.Config{MaxBodyBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return client{t: t, url: ts.URL, token: srv.AdminToken()}, srv, dir
}

// newToken creates a namespace token with the admin client c and answers it.
func newToken(c client, ns, access string) (tok, id string) {
	c.t.Helper()
	v := c.json("POST", "/v1/tokens", []byte(`{"namespace":"`+ns+`","access":"`+access+`","note":"test"}`), 201)
	return v["token"].(string), v["id"].(string)
}

// Token kinds of the route table, in the order each route is tried: refusals first, then the
// namespace's writer, then the admin, so that a route that deletes lets the writer delete.
const (
	kGarbage = iota
	kRevoked
	kRead
	kNSRead
	kOther
	kNSWrite
	kAdmin
	nKinds
)

var kindNames = [nKinds]string{"garbage", "revoked", "read", "namespace read", "other namespace", "namespace write", "admin"}

// Every route × every kind of token, with the status each gets: the admin token passes every
// route; the read token reads; a revoked or garbage token gets 401; a namespace token of team-a
// works with team-a's jobs (write, or read for GETs), gets 403 on another namespace's job scope
// and on the admin's routes, 404 on another namespace's job; the OpenAI-compatible routes admit
// no namespace token. The table covers every route the server serves (a new route fails here
// until it has a row and a rule).
func TestTokens_EveryRouteEveryToken(t *testing.T) {
	c, srv, dir := setupRoomy(t)
	if un := api.UncoveredRoutes(srv); len(un) > 0 {
		t.Fatalf("routes without a rule for namespace tokens: %v", un)
	}
	wasm, err := os.ReadFile(guestbuild.Go(t, "../testdata/guest"))
	if err != nil {
		t.Fatal(err)
	}
	c.json("POST", "/v1/modules?name=svc&version=1.0.0", wasm, 201)
	// Jobs that run until stopped: work in a job's scope needs the job running.
	for _, j := range []struct{ id, ns string }{{"ja", "team-a"}, {"jb", "team-b"}} {
		c.json("POST", "/v1/jobs", []byte(`{"submission_id":"`+j.id+`","namespace":"`+j.ns+`","entrypoint":{"module":"svc","function":"spin","args":0,"grants":["objects","tasks","actors"]}}`), 201)
	}
	obj := itoa(int64(c.json("POST", "/v1/objects?job=ja", []byte(`"v"`), 201)["ref"].(float64)))
	del := itoa(int64(c.json("POST", "/v1/objects?job=ja", []byte(`"d"`), 201)["ref"].(float64)))

	var tok [nKinds]string
	tok[kGarbage] = "lmt_0123456789abcdef_" + strings.Repeat("0", 64)
	read, err := os.ReadFile(filepath.Join(dir, api.ReadTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	tok[kRead] = strings.TrimSpace(string(read))
	tok[kAdmin] = c.token
	tok[kNSWrite], _ = newToken(c, "team-a", "write")
	tok[kNSRead], _ = newToken(c, "team-a", "read")
	tok[kOther], _ = newToken(c, "team-b", "write")
	var revokedID string
	tok[kRevoked], revokedID = newToken(c, "team-a", "write")
	if code, _ := c.do("DELETE", "/v1/tokens/"+revokedID, nil); code != 204 {
		t.Fatalf("revoke: %d", code)
	}

	job := `{"namespace":"team-a","entrypoint":{"module":"svc","function":"square","args":2}}`
	rows := []struct {
		route, path, body string
		admin, nsWrite    int // the statuses of the admin and of team-a's writer
		other             int // team-b's writer
	}{
		{"GET /", "/", "", 200, 200, 200},
		{"GET /v1/status", "/v1/status", "", 200, 200, 200},
		{"GET /v1/modules", "/v1/modules", "", 200, 200, 200},
		{"GET /v1/modules/:ref", "/v1/modules/svc@1.0.0", "", 200, 200, 200},
		{"POST /v1/modules", "/v1/modules?name=x&version=1.0.0", "not wasm", 400, 403, 403},
		{"DELETE /v1/modules/:ref", "/v1/modules/nope@1.0.0", "", 404, 403, 403},
		{"POST /v1/modules/:ref/call/:function", "/v1/modules/svc@1.0.0/call/square?job=ja", "3", 403, 403, 403}, // denied: a call grants nothing
		{"POST /v1/tasks", "/v1/tasks", `{"module":"svc","function":"square","args":2,"job":"ja"}`, 201, 201, 403},
		{"DELETE /v1/tasks/:ref", "/v1/tasks/999999?job=ja", "", 404, 404, 403},
		{"POST /v1/objects", "/v1/objects?job=ja", `"x"`, 201, 201, 403},
		{"GET /v1/objects/:ref", "/v1/objects/" + obj + "?job=ja", "", 200, 200, 403},
		{"GET /v1/objects/:ref/meta", "/v1/objects/" + obj + "/meta?job=ja", "", 200, 200, 403},
		{"DELETE /v1/objects/:ref", "/v1/objects/" + del + "?job=ja", "", 404, 204, 403},
		{"POST /v1/wait", "/v1/wait", `{"handles":[` + obj + `],"num_returns":1,"timeout_ms":0,"job":"ja"}`, 200, 200, 403},
		{"POST /v1/actors", "/v1/actors", `{"module":"svc","actor":"Counter","args":1,"job":"ja"}`, 201, 201, 403},
		{"GET /v1/actors", "/v1/actors?job=ja", "", 200, 200, 403},
		{"POST /v1/actors/:actor/call/:method", "/v1/actors/999999/call/incr?job=ja", "1", 404, 404, 403},
		{"DELETE /v1/actors/:actor", "/v1/actors/999999?job=ja", "", 404, 404, 403},
		{"POST /v1/workflows", "/v1/workflows?job=ja", "{}", 400, 403, 403},
		{"GET /v1/workflows", "/v1/workflows", "", 200, 403, 403},
		{"GET /v1/workflows/:id", "/v1/workflows/nope", "", 404, 403, 403},
		{"GET /v1/workflows/:id/result", "/v1/workflows/nope/result", "", 404, 403, 403},
		{"DELETE /v1/workflows/:id", "/v1/workflows/nope", "", 404, 403, 403},
		{"POST /v1/compiled", "/v1/compiled?job=ja", "{}", 400, 403, 403},
		{"POST /v1/compiled/:id/execute", "/v1/compiled/nope/execute", "1", 404, 403, 403},
		{"GET /v1/cluster", "/v1/cluster", "", 200, 200, 200},
		{"DELETE /v1/cluster/nodes/:id", "/v1/cluster/nodes/nope", "", 409, 403, 403},
		{"POST /v1/placement_groups", "/v1/placement_groups", `{"strategy":"NEAR"}`, 400, 403, 403},
		{"GET /v1/placement_groups/:id", "/v1/placement_groups/nope", "", 404, 404, 404},
		{"DELETE /v1/placement_groups/:id", "/v1/placement_groups/nope", "", 404, 403, 403},
		{"PUT /v1/kv/*key", "/v1/kv/k", "v", 200, 403, 403},
		{"GET /v1/kv/*key", "/v1/kv/k", "", 200, 403, 403},
		{"DELETE /v1/kv/*key", "/v1/kv/gone", "", 200, 403, 403},
		{"POST /v1/data/jobs", "/v1/data/jobs?job=ja", "{}", 403, 403, 403}, // the admin's: no data root here
		{"GET /v1/data/jobs/:id", "/v1/data/jobs/nope", "", 404, 403, 403},
		{"DELETE /v1/data/jobs/:id", "/v1/data/jobs/nope", "", 404, 403, 403},
		{"POST /v1/jobs", "/v1/jobs", job, 201, 201, 403},
		{"GET /v1/jobs", "/v1/jobs", "", 200, 200, 200},
		{"GET /v1/jobs/:id", "/v1/jobs/ja", "", 200, 200, 404},
		{"DELETE /v1/jobs/:id", "/v1/jobs/ja", "", 409, 200, 404}, // team-a's writer stops it; then it has ended
		{"GET /v1/namespaces", "/v1/namespaces", "", 200, 403, 403},
		{"PUT /v1/namespaces/:name/quota", "/v1/namespaces/team-a/quota", `{"tasks":64}`, 200, 403, 403},
		{"POST /v1/tokens", "/v1/tokens", `{"namespace":"team-a","access":"read"}`, 201, 403, 403},
		{"GET /v1/tokens", "/v1/tokens", "", 200, 403, 403},
		{"DELETE /v1/tokens/:id", "/v1/tokens/0123456789abcdef", "", 404, 403, 403},
		// The OpenAI-compatible routes (no model served here: 404) admit no namespace token.
		{"", "/v1/models", "", 404, 401, 401},
		{"", "/v1/chat/completions", "{}", 404, 401, 401},
	}
	covered := map[string]bool{}
	for _, r := range rows {
		covered[r.route] = true
		method, _, _ := strings.Cut(r.route, " ")
		if r.route == "" {
			method = "GET"
			if r.body != "" {
				method = "POST"
			}
		}
		get := method == "GET"
		var want [nKinds]int
		want[kGarbage], want[kRevoked] = 401, 401
		want[kAdmin], want[kNSWrite], want[kOther] = r.admin, r.nsWrite, r.other
		want[kRead], want[kNSRead] = 403, 403
		if get {
			want[kRead], want[kNSRead] = r.admin, r.nsWrite
		}
		if r.route == "" { // OpenAI's auth: the read token may GET, namespace tokens are unknown
			want[kNSRead] = 401
			if !get {
				want[kRead] = 403
			}
		}
		var kinds [nKinds]string
		for k := range nKinds {
			start := time.Now()
			code, b := client{t: t, url: c.url, token: tok[k]}.do(method, r.path, []byte(r.body))
			if d := time.Since(start); d > 2*time.Second {
				t.Logf("%s %s as %s took %v", method, r.path, kindNames[k], d)
			}
			if code != want[k] {
				t.Errorf("%s %s as %s: %d %s, want %d", method, r.path, kindNames[k], code, b, want[k])
			}
			var e struct{ Error struct{ Kind string } }
			json.Unmarshal(b, &e)
			kinds[k] = e.Error.Kind
		}
		// A namespace token that gets the admin's error got it from the handler, not from its
		// confinement: the same kind ("denied", "not_found"), never "forbidden" where the admin
		// was not.
		// (Data jobs are refused to namespace tokens and to this node's admin alike.)
		if r.route != "" && r.route != "POST /v1/data/jobs" && r.nsWrite == r.admin && r.admin >= 400 && kinds[kNSWrite] != kinds[kAdmin] {
			t.Errorf("%s %s as %s: kind %q, the admin's %q", method, r.path, kindNames[kNSWrite], kinds[kNSWrite], kinds[kAdmin])
		}
	}
	for _, r := range api.PolicyRoutes() {
		if !covered[r] {
			t.Errorf("route %s has no row", r)
		}
	}
	if t.Failed() {
		return
	}

	// What the namespace's tokens see: only their namespace's jobs and no other namespace's.
	ns := client{t: t, url: c.url, token: tok[kNSRead]}
	for _, q := range []string{"", "?namespace=team-a"} {
		js := ns.json("GET", "/v1/jobs"+q, nil, 200)["jobs"].([]any)
		var ids []string
		for _, j := range js {
			if j.(map[string]any)["namespace"] != "team-a" {
				t.Fatalf("a team-a token listed %v", j)
			}
			ids = append(ids, j.(map[string]any)["id"].(string))
		}
		if !slices.Contains(ids, "ja") || slices.Contains(ids, "jb") || len(ids) != 3 {
			t.Fatalf("a team-a token listed %v", ids)
		}
	}
	ns.json("GET", "/v1/jobs?namespace=team-b", nil, 403)
	ns.json("GET", "/v1/jobs?namespace=team-a&namespace=team-b", nil, 403)
	if js := c.json("GET", "/v1/jobs", nil, 200)["jobs"].([]any); len(js) != 4 {
		t.Fatalf("the admin lists %d jobs", len(js))
	}
}

// The confinement of a namespace token's writes beyond its route's rule: the job scope (absent,
// another namespace's, a job that does not exist), the job submission's namespace, placement
// groups, the "data" grant, named actors; each refusal is 403 with kind "forbidden" and leaves
// nothing behind.
func TestTokens_NamespaceConfinement(t *testing.T) {
	c, _, _ := setupRoomy(t)
	wasm, err := os.ReadFile(guestbuild.Go(t, "../testdata/guest"))
	if err != nil {
		t.Fatal(err)
	}
	c.json("POST", "/v1/modules?name=svc&version=1.0.0", wasm, 201)
	c.json("POST", "/v1/jobs", []byte(`{"submission_id":"jb","namespace":"team-b","entrypoint":{"module":"svc","function":"square","args":3}}`), 201)
	tok, _ := newToken(c, "team-a", "write")
	a := client{t: t, url: c.url, token: tok}
	c.json("POST", "/v1/jobs", []byte(`{"submission_id":"ja","namespace":"team-a","entrypoint":{"module":"svc","function":"spin","args":0,"grants":["objects","tasks","actors"]}}`), 201)
	before := c.json("GET", "/v1/status", nil, 200)

	for _, r := range []struct{ method, path, body string }{
		{"POST", "/v1/jobs", `{"entrypoint":{"module":"svc","function":"square","args":2}}`}, // the default namespace
		{"POST", "/v1/jobs", `{"namespace":"team-b","entrypoint":{"module":"svc","function":"square","args":2}}`},
		{"POST", "/v1/jobs", `{"namespace":"team-a","entrypoint":{"module":"svc","function":"square","args":2,"grants":["data"]}}`},
		{"POST", "/v1/objects", `"no job"`},
		{"POST", "/v1/objects?job=default", `"the default scope"`},
		{"POST", "/v1/objects?job=jb", `"another namespace's job"`},
		{"POST", "/v1/objects?job=nope", `"no such job"`},
		{"POST", "/v1/tasks", `{"module":"svc","function":"square","args":2}`},
		{"POST", "/v1/tasks", `{"module":"svc","function":"square","args":2,"job":"jb"}`},
		{"POST", "/v1/tasks", `{"module":"svc","function":"square","args":2,"job":"ja","grants":["data"]}`},
		{"POST", "/v1/tasks", `{"module":"svc","function":"square","args":2,"job":"ja","placement_group":"pg","bundle_index":0}`},
		{"POST", "/v1/tasks", `{"module":"svc","function":"square","args":2,"job":"ja","JOB":"jb"}`}, // encoding/json: the last match wins, in both decoders
		{"POST", "/v1/actors", `{"module":"svc","actor":"Counter","args":1,"job":"ja","name":"c","namespace":"team-b"}`},
		{"POST", "/v1/actors", `{"module":"svc","actor":"Counter","args":1,"job":"ja","name":"c"}`},
		{"GET", "/v1/actors", ""},
		{"GET", "/v1/actors?name=c&namespace=team-b", ""},
		{"POST", "/v1/modules/svc@1.0.0/call/square", "2"},
	} {
		v := a.json(r.method, r.path, []byte(r.body), 403)
		if e := v["error"].(map[string]any); e["kind"] != "forbidden" || e["message"] == "" {
			t.Fatalf("%s %s: %v", r.method, r.path, v)
		}
	}
	if js := c.json("GET", "/v1/jobs", nil, 200)["jobs"].([]any); len(js) != 2 {
		t.Fatalf("refused submissions left jobs: %v", js)
	}
	if st := c.json("GET", "/v1/status", nil, 200); st["objects"] != before["objects"] || st["actors"] != before["actors"] {
		t.Fatalf("refused requests left objects or actors: %v", st)
	}

	// Within its namespace: a named actor of its namespace, found by name, called in its job.
	v := a.json("POST", "/v1/actors", []byte(`{"module":"svc","actor":"Counter","args":1,"job":"ja","name":"c","namespace":"team-a","grants":["objects","tasks","actors"]}`), 201)
	id := itoa(int64(v["actor"].(float64)))
	if f := a.json("GET", "/v1/actors?name=c&namespace=team-a", nil, 200); itoa(int64(f["actor"].(float64))) != id || f["job"] != "ja" {
		t.Fatalf("found %v", f)
	}
	ref := itoa(int64(a.json("POST", "/v1/actors/"+id+"/call/incr?job=ja", []byte("2"), 201)["ref"].(float64)))
	if code, b := a.do("GET", "/v1/objects/"+ref+"?job=ja", nil); code != 200 || string(b) != "3" {
		t.Fatalf("actor call result: %d %s", code, b)
	}
	// Its job submissions, read and stopped.
	a.json("POST", "/v1/jobs", []byte(`{"submission_id":"spin","namespace":"team-a","entrypoint":{"module":"svc","function":"spin","args":0,"grants":["objects","tasks","actors"]}}`), 201)
	if v := a.json("DELETE", "/v1/jobs/spin", nil, 200); v["status"] != "STOPPED" {
		t.Fatalf("stopped: %v", v)
	}
	// Another namespace's job reads as one that does not exist, with the same body.
	_, missing := a.do("GET", "/v1/jobs/nope", nil)
	_, other := a.do("GET", "/v1/jobs/jb", nil)
	if strings.ReplaceAll(string(missing), "nope", "jb") != string(other) {
		t.Fatalf("another namespace's job answers %s, a missing one %s", other, missing)
	}
	a.json("DELETE", "/v1/jobs/jb", nil, 404)
	if v := c.json("GET", "/v1/jobs/jb?wait=true", nil, 200); v["status"] == "STOPPED" {
		t.Fatalf("team-b's job after team-a's stop: %v", v)
	}
}

// POST /v1/tokens answers the token once; GET lists without it; bad specs are 400.
func TestTokens_CreateListRevoke(t *testing.T) {
	c, _, _ := setup(t)
	tok, id := newToken(c, "team-a", "read")
	list := c.json("GET", "/v1/tokens", nil, 200)["tokens"].([]any)
	if len(list) != 1 {
		t.Fatalf("list %v", list)
	}
	rec := list[0].(map[string]any)
	if rec["id"] != id || rec["namespace"] != "team-a" || rec["access"] != "read" || rec["note"] != "test" || rec["created"] == "" || rec["token"] != nil || rec["sha256"] != nil {
		t.Fatalf("listed %v", rec)
	}
	if strings.Contains(fmt.Sprint(list), tok[len("lmt_")+17:]) {
		t.Fatal("the list shows the secret")
	}
	for _, body := range []string{`{"namespace":"","access":"read"}`, `{"namespace":"a","access":"admin"}`, `{"namespace":"a b","access":"write"}`, `{"namespace":"a","access":"read","extra":1}`, `nope`} {
		c.json("POST", "/v1/tokens", []byte(body), 400)
	}
	a := client{t: t, url: c.url, token: tok}
	a.json("GET", "/v1/status", nil, 200)
	c.json("DELETE", "/v1/tokens/"+id, nil, 204)
	a.json("GET", "/v1/status", nil, 401)
	c.json("DELETE", "/v1/tokens/"+id, nil, 404)
}

// clusterNode is one node of an in-process cluster: an engine and its API on loopback.
type clusterNode struct {
	e   *engine.Engine
	url string
}

// startClusterNode opens a node that bootstraps a cluster (join nil) or joins through join.
func startClusterNode(t *testing.T, id string, join *clusterNode) *clusterNode {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	raftAddr := rl.Addr().String()
	rl.Close()
	cc := engine.ClusterConfig{NodeID: id, RaftBind: raftAddr, APIURL: "http://" + l.Addr().String(),
		HeartbeatInterval: 100 * time.Millisecond, DeadAfter: time.Second}
	if join != nil {
		jt, err := os.ReadFile(filepath.Join(join.e.DataDir(), engine.JoinTokenFile))
		if err != nil {
			t.Fatal(err)
		}
		cc.Join, cc.JoinToken, cc.Worker = join.url, strings.TrimSpace(string(jt)), true
	}
	ctx := context.Background()
	e, err := engine.Open(ctx, engine.Config{DataDir: t.TempDir(), Cluster: cc})
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	srv, err := api.New(e, api.Config{})
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler()}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close(); e.Close(ctx) })
	return &clusterNode{e: e, url: cc.APIURL}
}

// A token created on one node of a cluster is admitted by the other at once (the record is in
// the replicated state; a node that has not applied it yet catches up with the leader first),
// with the same confinement; a token revoked on the other node is refused by both.
func TestTokens_Cluster(t *testing.T) {
	a := startClusterNode(t, "a", nil)
	b := startClusterNode(t, "b", a)
	admin, err := os.ReadFile(filepath.Join(a.e.DataDir(), api.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	ca := client{t: t, url: a.url, token: strings.TrimSpace(string(admin))}
	cb := client{t: t, url: b.url, token: ca.token}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := cb.json("GET", "/v1/cluster", nil, 200)
		if members, _ := st["members"].([]any); len(members) == 2 && st["leader"] == "a" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b never saw the cluster of two: %v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}

	for round := range 3 {
		tok, id := newToken(ca, "team-a", "read")
		onB := client{t: t, url: b.url, token: tok}
		onA := client{t: t, url: a.url, token: tok}
		// On b right away: no poll.
		onB.json("GET", "/v1/jobs", nil, 200)
		onB.json("GET", "/v1/namespaces", nil, 403)
		onB.json("POST", "/v1/objects?job=x", []byte("1"), 403)
		onA.json("GET", "/v1/jobs", nil, 200)
		if list := cb.json("GET", "/v1/tokens", nil, 200)["tokens"].([]any); len(list) != 1 || list[0].(map[string]any)["id"] != id {
			t.Fatalf("round %d: b lists %v, want only %s (the earlier ones are revoked)", round, list, id)
		}
		// Revoked through b (forwarded to the leader): refused by b at once, by a once it
		// has applied the deletion.
		cb.json("DELETE", "/v1/tokens/"+id, nil, 204)
		onB.json("GET", "/v1/jobs", nil, 401)
		deadline := time.Now().Add(5 * time.Second)
		for {
			code, _ := onA.do("GET", "/v1/jobs", nil)
			if code == 401 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a still admits a token revoked on b: %d", code)
			}
			time.Sleep(5 * time.Millisecond)
		}
		// Revoked for good: still refused after both have caught up.
		onB.json("GET", "/v1/status", nil, 401)
		ca.json("GET", "/v1/status", nil, 200)
	}
}
