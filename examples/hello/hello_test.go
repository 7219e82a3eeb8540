package hello_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/engine/api"
	"github.com/lumenflow/lumen/internal/guestbuild"
)

// The example end to end: its guest built from source, uploaded over the REST API under its
// lumen.json name, and each of its tasks called with the output checked.
func TestHello_EndToEnd(t *testing.T) {
	wasm, err := os.ReadFile(guestbuild.Go(t, "guest"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	eng, err := engine.Open(ctx, engine.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	srv, err := api.New(eng, api.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	do := func(method, path string, body []byte) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, ts.URL+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+srv.AdminToken())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		return resp.StatusCode, v
	}

	if code, v := do("POST", "/v1/modules?name=hello&version=1.0.0", wasm); code != http.StatusCreated {
		t.Fatalf("upload: %d %v", code, v)
	}
	if code, v := do("POST", "/v1/modules/hello@1.0.0/call/add", []byte(`{"A":40,"B":2}`)); code != 200 || v["output"] != float64(42) {
		t.Fatalf("add: %d %v", code, v)
	}
	code, v := do("POST", "/v1/modules/hello/call/wordcount", []byte("The cat and the hat. The end!"))
	if code != 200 || v["output_text"] != "the 3\nand 1\ncat 1\nend 1\nhat 1\n" || !strings.Contains(v["log"].(string), "5 distinct words") {
		t.Fatalf("wordcount: %d %v", code, v)
	}
	code, v = do("POST", "/v1/modules/hello/call/divide", []byte(`{"A":1,"B":0}`))
	e, _ := v["error"].(map[string]any)
	if code != http.StatusUnprocessableEntity || e["kind"] != "guest_error" || e["code"] != "division_by_zero" {
		t.Fatalf("divide by zero: %d %v", code, v)
	}
	if code, v := do("POST", "/v1/modules/hello/call/nope", nil); code != http.StatusNotFound {
		t.Fatalf("unknown function: %d %v", code, v)
	}
}
