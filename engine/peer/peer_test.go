package peer_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/lumenflow/lumen/engine/peer"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/sdk/abi"
)

const joinToken = "0123456789abcdef0123456789abcdef0123456789abcdef"

// node is a Handler that keeps what it was sent and answers what it is told: the seam engine
// implements, so that these tests see the protocol alone.
type node struct {
	got     []any // the messages received, in order
	fail    error // when set, every method fails with it
	view    []wire.NodeView
	modules map[string][]byte // what ModuleBytes answers, by digest
}

func (n *node) answer(msg any) error {
	n.got = append(n.got, msg)
	return n.fail
}

func (n *node) SubmitPlaced(_ context.Context, t *wire.PlacedTask) (wire.Submitted, error) {
	return wire.Submitted{Ref: 7, Job: t.Job}, n.answer(t)
}
func (n *node) CancelTask(_ context.Context, job string, ref int64) error {
	return n.answer([]any{"cancel", job, ref})
}
func (n *node) ObjectMeta(_ context.Context, job string, ref int64, wait time.Duration) (wire.ObjectMeta, error) {
	return wire.ObjectMeta{Size: 2, Checksum: peer.Checksum([]byte("hi")), Refs: []int64{3}}, n.answer([]any{"meta", job, ref, wait})
}
func (n *node) ObjectValue(_ context.Context, job string, ref int64, wait time.Duration) (wire.ObjectValue, error) {
	v := []byte(`{"$ref":3}`)
	return wire.ObjectValue{Value: v, Meta: wire.ObjectMeta{Size: int64(len(v)), Checksum: peer.Checksum(v), Refs: []int64{3}}}, n.answer([]any{"value", job, ref, wait})
}
func (n *node) ReleaseObject(_ context.Context, job string, ref int64) error {
	return n.answer([]any{"release", job, ref})
}
func (n *node) CreateActor(_ context.Context, a *wire.PlacedActor) (wire.CreatedActor, error) {
	return wire.CreatedActor{Actor: 11, Job: a.Job}, n.answer(a)
}
func (n *node) CallActor(_ context.Context, id int64, c *wire.ActorCall) (wire.Submitted, error) {
	return wire.Submitted{Ref: id + 1, Job: c.Job}, n.answer(c)
}
func (n *node) KillActor(_ context.Context, id int64, k *wire.ActorKill) error {
	return n.answer(k)
}
func (n *node) Join(_ context.Context, j *wire.JoinRequest) (wire.JoinResponse, error) {
	return wire.JoinResponse{Secrets: map[string]string{"token": "t"}}, n.answer(j)
}
func (n *node) Apply(_ context.Context, cmd []byte) error { return n.answer(cmd) }
func (n *node) ReadIndex(context.Context) (uint64, error) {
	return 42, n.answer("readindex")
}
func (n *node) Self(context.Context) wire.NodeStatus {
	return wire.NodeStatus{ID: "n1", StateHash: "h"}
}
func (n *node) Heartbeat(_ context.Context, hb *wire.Heartbeat) ([]wire.NodeView, error) {
	return n.view, n.answer(hb)
}

func (n *node) ModuleBytes(_ context.Context, digest string) ([]byte, error) {
	if err := n.answer([]any{"module", digest}); err != nil {
		return nil, err
	}
	b, ok := n.modules[digest]
	if !ok {
		return nil, wire.Errorf(wire.KindNotFound, "module %s is not on this node", digest)
	}
	return b, nil
}
func (n *node) KeepModuleBytes(_ context.Context, digest string, wasm []byte) error {
	return n.answer([]any{"keep", digest, len(wasm)})
}

// serve mounts the peer routes of h on a test server.
func serve(t *testing.T, h peer.Handler, cfg peer.Config) *httptest.Server {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	if cfg.Credential == "" {
		cfg.Credential = peer.Credential(joinToken)
	}
	peer.Mount(r, h, cfg)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv
}

func TestCredential_IsDeterministicPerTokenAndIsNotTheToken(t *testing.T) {
	a, b := peer.Credential(joinToken), peer.Credential(joinToken)
	other := peer.Credential(joinToken + "x")
	if a != b || a == other || len(a) != 64 || strings.Contains(a, joinToken) {
		t.Fatalf("Credential: %q %q %q", a, b, other)
	}
}

func TestServer_AdmitsTheNodeCredentialOnly(t *testing.T) {
	srv := serve(t, &node{}, peer.Config{})
	for _, c := range []struct {
		name, auth string
		want       int
	}{
		{"none", "", http.StatusUnauthorized},
		{"not a bearer", "Basic eDp5", http.StatusUnauthorized},
		{"an API token", "Bearer " + strings.Repeat("ab", 32), http.StatusForbidden},
		{"the join token itself", "Bearer " + joinToken, http.StatusForbidden},
		{"another cluster's credential", "Bearer " + peer.Credential(joinToken+"x"), http.StatusForbidden},
		{"the credential", "Bearer " + peer.Credential(joinToken), http.StatusOK},
	} {
		req, _ := http.NewRequest("GET", srv.URL+peer.Prefix+"/cluster/self", nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body wire.Body
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d, want %d", c.name, resp.StatusCode, c.want)
		}
		if c.want != http.StatusOK && (body.Error.Kind.Status() != c.want || body.Error.Message == "") {
			t.Errorf("%s: body %+v", c.name, body)
		}
	}
}

// Over TLS, the credential alone is not enough: the connection must carry a client certificate
// the cluster's CA signed.
func TestServer_WantsAClientCertificateOverTLS(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	peer.Mount(r, &node{}, peer.Config{Credential: peer.Credential(joinToken)})
	srv := httptest.NewTLSServer(r)
	defer srv.Close()
	_, err := peer.NewClient(srv.Client(), peer.Credential(joinToken)).Self(context.Background(), srv.URL)
	we, answered := peer.IsAnswer(err)
	if !answered || we.Kind != wire.KindForbidden || !strings.Contains(we.Message, "client certificate") {
		t.Fatalf("TLS without a client certificate: %v", err)
	}
}

func TestClient_EveryMessageRoundTrips(t *testing.T) {
	n := &node{view: []wire.NodeView{{Heartbeat: wire.Heartbeat{ID: "n1", Total: map[string]float64{"cpu": 2}}, SeenAgoMs: 5}}}
	srv := serve(t, n, peer.Config{})
	c := peer.NewClient(nil, peer.Credential(joinToken))
	ctx := context.Background()

	task := &wire.PlacedTask{Task: abi.TaskRequest{Module: "sha256-ab", Function: "f", Args: json.RawMessage(`{"$ref":4}`), Refs: []int64{4}},
		Job: "j", Grants: []abi.Capability{abi.CapObjects}, RemoteRefs: []wire.RemoteRef{{Ref: 4, Node: "n2", Handle: 9, Job: "j", Size: -1}}, Owner: "n0", Applied: 3}
	if sub, err := c.SubmitTask(ctx, srv.URL, task); err != nil || sub != (wire.Submitted{Ref: 7, Job: "j"}) {
		t.Fatalf("SubmitTask: %+v %v", sub, err)
	}
	if err := c.CancelTask(ctx, srv.URL, "j", 7); err != nil {
		t.Fatal(err)
	}
	if m, err := c.ObjectMeta(ctx, srv.URL, "j", 7, 2*time.Second); err != nil || m.Size != 2 || !reflect.DeepEqual(m.Refs, []int64{3}) {
		t.Fatalf("ObjectMeta: %+v %v", m, err)
	}
	if v, err := c.Object(ctx, srv.URL, "j", 7, time.Second, 10); err != nil || string(v.Value) != `{"$ref":3}` || !reflect.DeepEqual(v.Meta.Refs, []int64{3}) {
		t.Fatalf("Object: %+v %v", v, err)
	}
	if err := c.ReleaseObject(ctx, srv.URL, "j", 7); err != nil {
		t.Fatal(err)
	}
	actor := &wire.PlacedActor{Actor: abi.ActorCreateRequest{Module: "sha256-ab", Actor: "Counter"}, Job: "j", Owner: wire.ActorOwner{Node: "n0", Handle: 5, Boot: "b"}, Applied: 3}
	if out, err := c.CreateActor(ctx, srv.URL, actor); err != nil || out.Actor != 11 {
		t.Fatalf("CreateActor: %+v %v", out, err)
	}
	call := &wire.ActorCall{Job: "j", Method: "incr", Input: []byte{0, 0xff, '"'}}
	if sub, err := c.CallActor(ctx, srv.URL, 11, call); err != nil || sub.Ref != 12 {
		t.Fatalf("CallActor: %+v %v", sub, err)
	}
	kill := &wire.ActorKill{Job: "j", Owner: &actor.Owner}
	if err := c.KillActor(ctx, srv.URL, 11, kill); err != nil {
		t.Fatal(err)
	}
	join := &wire.JoinRequest{ID: "n3", Raft: "127.0.0.1:9", API: "http://n3", Worker: true}
	if out, err := c.Join(ctx, srv.URL, join); err != nil || out.Secrets["token"] != "t" {
		t.Fatalf("Join: %+v %v", out, err)
	}
	if err := c.Apply(ctx, srv.URL, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if idx, err := c.ReadIndex(ctx, srv.URL); err != nil || idx != 42 {
		t.Fatalf("ReadIndex: %d %v", idx, err)
	}
	if st, err := c.Self(ctx, srv.URL); err != nil || st.ID != "n1" {
		t.Fatalf("Self: %+v %v", st, err)
	}
	hb := &wire.Heartbeat{ID: "n2", API: "http://n2", Total: map[string]float64{"cpu": 1}, Available: map[string]float64{"cpu": 0.5}}
	if view, err := c.Heartbeat(ctx, srv.URL, hb); err != nil || !reflect.DeepEqual(view, n.view) {
		t.Fatalf("Heartbeat: %+v %v", view, err)
	}

	want := []any{task, []any{"cancel", "j", int64(7)}, []any{"meta", "j", int64(7), 2 * time.Second}, []any{"value", "j", int64(7), time.Second},
		[]any{"release", "j", int64(7)}, actor, call, kill, join, []byte{1, 2, 3}, "readindex", hb}
	if len(n.got) != len(want) {
		t.Fatalf("the node received %d messages, want %d: %+v", len(n.got), len(want), n.got)
	}
	for i := range want {
		if !reflect.DeepEqual(n.got[i], want[i]) {
			t.Errorf("message %d: received %#v, sent %#v", i, n.got[i], want[i])
		}
	}
}

// The node's verdict reaches the caller as a *wire.Error of the kind it had; a failure to get one
// is not an answer.
func TestClient_TellsAnAnswerFromNoAnswer(t *testing.T) {
	n := &node{}
	srv := serve(t, n, peer.Config{Classify: func(err error) *wire.Error {
		k, ok := wire.KindOf(err)
		if !ok {
			k = wire.KindInternal
		}
		return &wire.Error{Kind: k, Message: err.Error(), LeaderAPI: "http://leader"}
	}})
	c := peer.NewClient(nil, peer.Credential(joinToken))
	ctx := context.Background()
	for _, k := range []wire.Kind{wire.KindConflict, wire.KindNotLeader, wire.KindNotReady, wire.Kind(abi.KindSystem), wire.KindGuest} {
		n.fail = wire.Wrap(k, errors.New("it went wrong"))
		_, err := c.ReadIndex(ctx, srv.URL)
		we, answered := peer.IsAnswer(err)
		if !answered || we.Kind != k || we.Message != "it went wrong" || we.LeaderAPI != "http://leader" {
			t.Errorf("%s: %v", k, err)
		}
		if errors.Is(err, peer.ErrUnreachable) {
			t.Errorf("%s: an answer reads as unreachable", k)
		}
	}

	// Malformed messages are refused by the server with bad_input, before the handler.
	n.fail, n.got = nil, nil
	_, err := c.SubmitTask(ctx, srv.URL, &wire.PlacedTask{Task: abi.TaskRequest{Module: "m", Function: "f"}})
	if k, _ := wire.KindOf(err); k != wire.KindBadInput || len(n.got) != 0 {
		t.Fatalf("a task without an owner: %v (handler saw %d)", err, len(n.got))
	}

	// No one there.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	_, err = c.Self(ctx, dead.URL)
	if _, answered := peer.IsAnswer(err); answered || !errors.Is(err, peer.ErrUnreachable) {
		t.Fatalf("a closed server: %v", err)
	}
	// Someone that does not speak this version (an old node's 404, a proxy).
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":{"kind":"not_found","message":"no route"}}`))
	}))
	defer old.Close()
	_, err = c.SubmitTask(ctx, old.URL, &wire.PlacedTask{})
	if _, answered := peer.IsAnswer(err); answered || !errors.Is(err, peer.ErrVersion) {
		t.Fatalf("a node of another version: %v", err)
	}
}

func TestServer_CapsBodies(t *testing.T) {
	n := &node{}
	srv := serve(t, n, peer.Config{MaxBodyBytes: 1 << 10, MaxCommandBytes: 2 << 10})
	c := peer.NewClient(nil, peer.Credential(joinToken))
	ctx := context.Background()
	big := &wire.ActorCall{Method: "m", Input: make([]byte, 4<<10)}
	if _, err := c.CallActor(ctx, srv.URL, 1, big); !isKind(err, wire.KindTooLarge) {
		t.Fatalf("an oversized call: %v", err)
	}
	if err := c.Apply(ctx, srv.URL, make([]byte, 3<<10)); !isKind(err, wire.KindTooLarge) {
		t.Fatalf("an oversized command: %v", err)
	}
	if len(n.got) != 0 {
		t.Fatalf("the handler saw %d oversized messages", len(n.got))
	}
	// A value over the client's cap is refused, not read.
	c.MaxValueBytes = 4
	if _, err := c.Object(ctx, srv.URL, "j", 1, 0, -1); !isKind(err, wire.KindTooLarge) {
		t.Fatalf("an oversized value: %v", err)
	}
}

// A value whose bytes do not match the checksum sent, or the size expected, is a bad answer.
func TestClient_ChecksValues(t *testing.T) {
	value := []byte("hello")
	for name, c := range map[string]struct {
		sum  string
		size int64
	}{
		"wrong checksum": {"00000000", -1},
		"no checksum":    {"", -1},
		"wrong size":     {peer.Checksum(value), 6},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(peer.VersionHeader, wire.Version)
			w.Header().Set(wire.ChecksumHeader, c.sum)
			w.Write(value)
		}))
		_, err := peer.NewClient(nil, "x").Object(context.Background(), srv.URL, "j", 1, 0, c.size)
		srv.Close()
		if !errors.Is(err, peer.ErrBadAnswer) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func isKind(err error, k wire.Kind) bool {
	got, _ := wire.KindOf(err)
	return got == k
}

// FuzzDecode feeds arbitrary bytes to the decoder of every message the server parses: it must
// never panic, and a message it accepts must encode and decode back to itself, and pass again.
func FuzzDecode(f *testing.F) {
	seeds := []string{
		`{"task":{"module":"m","function":"f","args":4,"refs":[1]},"owner":"s1","applied":3,"remote_refs":[{"ref":1,"node":"w","handle":2,"size":-1}]}`,
		`{"task":{"module":"m","function":"f"},"owner":"s1","placement_group":"g","bundle_index":1}`,
		`{"actor":{"module":"m","actor":"A"},"owner":{"node":"s1","handle":1,"boot":"b"},"applied":1}`,
		`{"method":"incr","input":"AAE=","remote_refs":[{"ref":1,"node":"w","handle":2}]}`,
		`{"job":"j","owner":{"node":"s1","handle":1,"boot":"b"}}`,
		`{"id":"w1","api":"http://w1","total":{"cpu":4},"available":{"cpu":1},"tasks_run":3}`,
		`{"id":"w1","raft":"127.0.0.1:1","api":"http://w1","worker":true}`,
		`{"task":{"function":"f"}} {}`, `{"owner":{"node":"a/b","handle":-1}}`, `null`, ``,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, mk := range []func() peer.Message{
			func() peer.Message { return &wire.PlacedTask{} },
			func() peer.Message { return &wire.PlacedActor{} },
			func() peer.Message { return &wire.ActorCall{} },
			func() peer.Message { return &wire.ActorKill{} },
			func() peer.Message { return &wire.Heartbeat{} },
			func() peer.Message { return &wire.JoinRequest{} },
		} {
			m := mk()
			if peer.Decode(b, m) != nil {
				continue
			}
			enc, err := json.Marshal(m)
			if err != nil {
				t.Fatalf("%T accepted from %q does not encode: %v", m, b, err)
			}
			again := mk()
			if err := peer.Decode(enc, again); err != nil {
				t.Fatalf("%T accepted from %q, refused once encoded as %s: %v", m, b, enc, err)
			}
			if enc2, _ := json.Marshal(again); string(enc2) != string(enc) {
				t.Fatalf("%T: %s reads back as %s", m, enc, enc2)
			}
		}
	})
}
