package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/engine/api"
	"github.com/lumenflow/lumen/internal/guestbuild"
)

type client struct {
	t     *testing.T
	url   string
	token string
}

func (c client) do(method, path string, body []byte) (int, []byte) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.url+path, bytes.NewReader(body))
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (c client) json(method, path string, body []byte, want int) map[string]any {
	c.t.Helper()
	code, b := c.do(method, path, body)
	if code != want {
		c.t.Fatalf("%s %s = %d %s, want %d", method, path, code, b, want)
	}
	var v map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &v); err != nil {
			c.t.Fatalf("%s %s: %s", method, path, b)
		}
	}
	return v
}

func setup(t *testing.T) (client, *api.Server, string) {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	eng, err := engine.Open(ctx, engine.Config{DataDir: dir})
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

func TestAPI_AuthAndErrors(t *testing.T) {
	c, _, dir := setup(t)
	anon := client{t: t, url: c.url}
	if code, _ := anon.do("GET", "/healthz", nil); code != 200 {
		t.Fatalf("healthz without a token: %d", code)
	}
	v := anon.json("GET", "/v1/modules", nil, 401)
	if e := v["error"].(map[string]any); e["kind"] != "unauthorized" || e["message"] == "" {
		t.Fatalf("401 body: %v", v)
	}
	client{t: t, url: c.url, token: "wrong"}.json("GET", "/v1/modules", nil, 401)
	read, err := os.ReadFile(filepath.Join(dir, api.ReadTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	ro := client{t: t, url: c.url, token: strings.TrimSpace(string(read))}
	ro.json("GET", "/v1/modules", nil, 200)
	ro.json("POST", "/v1/objects", []byte("x"), 403)
	for _, f := range []string{api.AdminTokenFile, api.ReadTokenFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("token file %s: %v %v", f, st.Mode(), err)
		}
	}
	c.json("POST", "/v1/objects", bytes.Repeat([]byte("x"), 2<<20), 413)
	c.json("POST", "/v1/modules", []byte("not wasm at all"), 400)
	c.json("GET", "/v1/nope", nil, 404)
	c.json("POST", "/v1/tasks", []byte(`{"module":"m","function":"f","bogus":1}`), 400)
	c.json("POST", "/v1/tasks", []byte(`{"module":"m","function":"f","grants":["fs"]}`), 400)
	c.json("GET", "/v1/objects/abc", nil, 400)
	c.json("GET", "/v1/objects/99", nil, 404)
}

func TestAPI_TasksObjectsActors(t *testing.T) {
	c, _, _ := setup(t)
	wasm, err := os.ReadFile(guestbuild.Go(t, "../testdata/guest"))
	if err != nil {
		t.Fatal(err)
	}
	c.json("POST", "/v1/modules?name=svc&version=1.0.0", wasm, 201)

	// A task from outside, its result fetched by ref.
	v := c.json("POST", "/v1/tasks", []byte(`{"module":"svc","function":"nested","args":9,"grants":["objects","tasks","actors"]}`), 201)
	ref := int64(v["ref"].(float64))
	if code, b := c.do("GET", "/v1/objects/"+itoa(ref), nil); code != 200 || string(b) != "81" {
		t.Fatalf("task result: %d %s", code, b)
	}
	// A failing task's object carries its error.
	v = c.json("POST", "/v1/tasks", []byte(`{"module":"svc","function":"fail","args":4,"grants":["objects","tasks","actors"]}`), 201)
	e := c.json("GET", "/v1/objects/"+itoa(int64(v["ref"].(float64))), nil, 422)["error"].(map[string]any)
	if e["kind"] != "guest_error" || e["code"] != "E_FAIL" {
		t.Fatalf("failed task: %v", e)
	}
	// Objects: put, wait, get, delete; jobs are separate.
	v = c.json("POST", "/v1/objects?job=j1", []byte("blob"), 201)
	obj := itoa(int64(v["ref"].(float64)))
	c.json("GET", "/v1/objects/"+obj, nil, 404) // job "default" does not see job j1's object
	w := c.json("POST", "/v1/wait", []byte(`{"job":"j1","handles":[`+obj+`],"num_returns":1,"timeout_ms":1000}`), 200)
	if len(w["ready"].([]any)) != 1 {
		t.Fatalf("wait: %v", w)
	}
	if code, b := c.do("GET", "/v1/objects/"+obj+"?job=j1", nil); code != 200 || string(b) != "blob" {
		t.Fatalf("get: %d %s", code, b)
	}
	c.json("DELETE", "/v1/objects/"+obj+"?job=j1", nil, 204)
	c.json("GET", "/v1/objects/"+obj+"?job=j1", nil, 404)

	// Actors: create named, find by name, call in order, kill, then calls fail clearly.
	v = c.json("POST", "/v1/actors", []byte(`{"module":"svc","actor":"Counter","args":10,"name":"c1","namespace":"ns","grants":["objects","tasks","actors"]}`), 201)
	actor := itoa(int64(v["actor"].(float64)))
	found := c.json("GET", "/v1/actors?namespace=ns&name=c1", nil, 200)
	if itoa(int64(found["actor"].(float64))) != actor {
		t.Fatalf("named lookup: %v", found)
	}
	var last string
	for i := 0; i < 3; i++ {
		last = itoa(int64(c.json("POST", "/v1/actors/"+actor+"/call/incr", []byte("2"), 201)["ref"].(float64)))
	}
	if code, b := c.do("GET", "/v1/objects/"+last, nil); code != 200 || string(b) != "16" {
		t.Fatalf("third incr: %d %s", code, b)
	}
	c.json("POST", "/v1/actors/"+actor+"/call/nope", []byte("1"), 404)
	c.json("DELETE", "/v1/actors/"+actor, nil, 204)
	// A call to a killed actor fails clearly: at once once it has ended, or through its result
	// while it is stopping.
	code, b := c.do("POST", "/v1/actors/"+actor+"/call/incr", []byte("1"))
	switch code {
	case 404:
		if !strings.Contains(string(b), "has ended") {
			t.Fatalf("call to an ended actor: %s", b)
		}
	case 201:
		var v map[string]any
		json.Unmarshal(b, &v)
		ref2 := itoa(int64(v["ref"].(float64)))
		if e := c.json("GET", "/v1/objects/"+ref2, nil, 409)["error"].(map[string]any); e["kind"] != "cancelled" {
			t.Fatalf("call to a killed actor: %v", e)
		}
	default:
		t.Fatalf("call to a killed actor: %d %s", code, b)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
