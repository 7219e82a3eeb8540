package api_test

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/engine/api"
	"github.com/lumenflow/lumen/engine/datajobs"
)

func dataSetup(t *testing.T, root string) client {
	t.Helper()
	ctx := context.Background()
	eng, err := engine.Open(ctx, engine.Config{DataDir: t.TempDir(), DataRoot: root})
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
	return client{t: t, url: ts.URL, token: srv.AdminToken()}
}

func TestAPI_DataJobs(t *testing.T) {
	root := t.TempDir()
	var csv strings.Builder
	csv.WriteString("city,temp\n")
	for i := range 500 {
		csv.WriteString([]string{"oslo", "lima", "pune"}[i%3] + "," + itoa(int64(i%40)) + "\n")
	}
	if err := os.MkdirAll(filepath.Join(root, "in"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "in", "t.csv"), []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	c := dataSetup(t, root)
	pipeline := `[{"read_csv": "in"}, {"filter": "temp >= 10"}, {"groupby": ["city"], "aggregate": {"n": "count()", "hi": "max(temp)"}}, {"sort": ["city"]}, {"write_csv": "out"}]`
	v := c.json("POST", "/v1/data/jobs?job=etl", []byte(pipeline), 201)
	id, _ := v["id"].(string)
	if !strings.HasPrefix(id, "dj-") || v["job"] != "etl" {
		t.Fatalf("created %v", v)
	}
	deadline := time.Now().Add(time.Minute)
	for v["state"] == datajobs.Running && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		v = c.json("GET", "/v1/data/jobs/"+id, nil, 200)
	}
	if v["state"] != datajobs.Succeeded {
		t.Fatalf("job %v", v)
	}
	w := v["result"].(map[string]any)["write"].(map[string]any)
	if w["rows"].(float64) != 3 || w["files"].([]any)[0] != "out/part-00000.csv" {
		t.Fatalf("result %v", w)
	}
	progress := v["progress"].([]any)
	if len(progress) != 4 || !strings.HasPrefix(progress[0].(map[string]any)["op"].(string), "1:read_csv(in)") {
		t.Fatalf("progress of %d operators: %v", len(progress), progress)
	}
	counts := map[string]int64{}
	for i := range 500 {
		if i%40 >= 10 {
			counts[[]string{"oslo", "lima", "pune"}[i%3]]++
		}
	}
	want := "city,hi,n\n"
	for _, city := range []string{"lima", "oslo", "pune"} {
		want += city + ",39," + itoa(counts[city]) + "\n"
	}
	out, err := os.ReadFile(filepath.Join(root, "out", "part-00000.csv"))
	if err != nil || string(out) != want {
		t.Fatalf("output %q %v", out, err)
	}
	// Bad input: each answered with its status and kind; the node keeps serving.
	for _, bad := range []struct {
		path, body string
		status     int
		kind       string
	}{
		{"/v1/data/jobs", `[{"read_csv": "../x"}, {"count": {}}]`, 400, "bad_input"},
		{"/v1/data/jobs", `[{"filter": "a"}]`, 400, "bad_input"},
		{"/v1/data/jobs", `not json`, 400, "bad_input"},
		{"/v1/data/jobs?grants=fs", `[{"read_csv": "in"}, {"count": {}}]`, 400, "bad_input"},
	} {
		v := c.json("POST", bad.path, []byte(bad.body), bad.status)
		if e := v["error"].(map[string]any); e["kind"] != bad.kind {
			t.Errorf("%s %s: %v", bad.path, bad.body, v)
		}
	}
	c.json("GET", "/v1/data/jobs/dj-nope", nil, 404)
	c.json("DELETE", "/v1/data/jobs/dj-nope", nil, 404)
	// A missing input folder fails the job, naming it.
	v = c.json("POST", "/v1/data/jobs", []byte(`[{"read_csv": "nowhere"}, {"count": {}}]`), 201)
	v = c.json("DELETE", "/v1/data/jobs/"+v["id"].(string), nil, 200)
	if v["state"] == datajobs.Succeeded || v["state"] == datajobs.Running {
		t.Errorf("missing input: %v", v)
	}
}

func TestAPI_DataJobsNeedADataRoot(t *testing.T) {
	c, _, _ := setup(t)
	v := c.json("POST", "/v1/data/jobs", []byte(`[{"from_items": [{"a": 1}]}]`), 403)
	if e := v["error"].(map[string]any); !strings.Contains(e["message"].(string), "data root") {
		t.Fatalf("%v", v)
	}
}
