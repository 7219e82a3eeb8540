package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/engine/api"
)

// TestAPI_QuotaRefusalIs429WithRetryAfter: work refused by a quota is 429 with Retry-After and
// the quota's name, and another job is not held back.
func TestAPI_QuotaRefusalIs429WithRetryAfter(t *testing.T) {
	ctx := context.Background()
	eng, err := engine.Open(ctx, engine.Config{DataDir: t.TempDir(), JobQuota: engine.Quota{ObjectBytes: 1000}})
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
	put := func(job string) *http.Response {
		req, _ := http.NewRequest("POST", ts.URL+"/v1/objects?job="+job, bytes.NewReader(make([]byte, 800)))
		req.Header.Set("Authorization", "Bearer "+srv.AdminToken())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := put("a"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("first put: %d", resp.StatusCode)
	}
	resp := put("a")
	defer resp.Body.Close()
	var body struct {
		Error struct{ Kind, Limit, Message string }
	}
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" ||
		body.Error.Kind != "limit_exceeded" || body.Error.Limit != "job_object_bytes" {
		t.Fatalf("put past the quota: %d Retry-After %q %+v", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if resp := put("b"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("another job's put: %d", resp.StatusCode)
	}
}
