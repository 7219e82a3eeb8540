package api_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lumenflow/lumen/engine/api"
	"github.com/lumenflow/lumen/internal/guestbuild"
)

// The jobs routes: submit (a task, a workflow), read with the result, list with filters, stop,
// namespaces; and each refusal with its status and the field it names.
func TestAPI_Jobs(t *testing.T) {
	c, _, dir := setup(t)
	wasm, err := os.ReadFile(guestbuild.Go(t, "../testdata/guest"))
	if err != nil {
		t.Fatal(err)
	}
	c.json("POST", "/v1/modules?name=svc&version=1.0.0", wasm, 201)

	v := c.json("POST", "/v1/jobs", []byte(`{"submission_id":"sq","namespace":"team","metadata":{"k":"v"},
	  "entrypoint":{"module":"svc","function":"square","args":12,"grants":["objects","tasks","actors"]}}`), 201)
	if v["id"] != "sq" || v["kind"] != "task" || v["namespace"] != "team" || v["entrypoint"] != "svc.square" {
		t.Fatalf("submitted: %v", v)
	}
	v = c.json("GET", "/v1/jobs/sq?wait=true&timeout_ms=30000", nil, 200)
	if v["status"] != "SUCCEEDED" || v["result"] != float64(144) || v["metadata"].(map[string]any)["k"] != "v" {
		t.Fatalf("ended: %v", v)
	}
	// A bytes result that is not JSON comes back as text.
	c.json("POST", "/v1/jobs", []byte(`{"submission_id":"echo","entrypoint":{"module":"svc","function":"echo","args":"plain","grants":["objects","tasks","actors"]}}`), 201)
	if v = c.json("GET", "/v1/jobs/echo?wait=true", nil, 200); v["result"] != "plain" && v["result_text"] != `"plain"` {
		t.Fatalf("echo: %v", v)
	}
	// A workflow job.
	wf := `{"submission_id":"flow","entrypoint":{"workflow":{"version":1,"name":"two","steps":[
	  {"id":"a","module":"svc","function":"square","args":3},
	  {"id":"b","module":"svc","function":"square","args":"${a}"}],"output":"${b}"},
	  "grants":["objects","tasks","actors"]}}`
	v = c.json("POST", "/v1/jobs", []byte(wf), 201)
	if v["kind"] != "workflow" || v["workflow"] == "" {
		t.Fatalf("workflow job: %v", v)
	}
	if v = c.json("GET", "/v1/jobs/flow?wait=true", nil, 200); v["status"] != "SUCCEEDED" || v["result"] != float64(81) {
		t.Fatalf("workflow job ended: %v", v)
	}
	// A failing job carries the guest's error.
	c.json("POST", "/v1/jobs", []byte(`{"submission_id":"boom","entrypoint":{"module":"svc","function":"fail","args":5,"grants":["objects","tasks","actors"]}}`), 201)
	v = c.json("GET", "/v1/jobs/boom?wait=true", nil, 200)
	if e, _ := v["error"].(map[string]any); v["status"] != "FAILED" || e["code"] != "E_FAIL" || !strings.Contains(v["message"].(string), "failed on 5") {
		t.Fatalf("failed job: %v", v)
	}
	// Stop a job that runs for ever; a second stop is a conflict.
	c.json("POST", "/v1/jobs", []byte(`{"submission_id":"forever","namespace":"team","entrypoint":{"module":"svc","function":"spin","args":0,"grants":["objects","tasks","actors"]}}`), 201)
	if v = c.json("GET", "/v1/jobs/forever?wait=true&timeout_ms=20", nil, 202); v["status"] != "RUNNING" {
		t.Fatalf("running job: %v", v)
	}
	if v = c.json("DELETE", "/v1/jobs/forever", nil, 200); v["status"] != "STOPPED" {
		t.Fatalf("stopped: %v", v)
	}
	c.json("DELETE", "/v1/jobs/forever", nil, 409)

	list := func(q string) []string {
		var out []string
		for _, j := range c.json("GET", "/v1/jobs"+q, nil, 200)["jobs"].([]any) {
			out = append(out, j.(map[string]any)["id"].(string))
		}
		return out
	}
	if got := list("?namespace=team"); !reflect.DeepEqual(got, []string{"forever", "sq"}) {
		t.Errorf("namespace team: %v", got)
	}
	if got := list("?status=FAILED"); !reflect.DeepEqual(got, []string{"boom"}) {
		t.Errorf("failed: %v", got)
	}
	if got := list(""); len(got) != 5 {
		t.Errorf("all: %v", got)
	}
	var names []string
	for _, ns := range c.json("GET", "/v1/namespaces", nil, 200)["namespaces"].([]any) {
		names = append(names, ns.(map[string]any)["name"].(string))
	}
	if !reflect.DeepEqual(names, []string{"default", "team"}) {
		t.Errorf("namespaces %v", names)
	}

	// Refusals, each naming what is wrong.
	for _, bad := range []struct {
		body string
		code int
		want string
	}{
		{`{"submission_id":"sq","entrypoint":{"module":"svc","function":"square","args":1}}`, 409, "exists already"},
		{`{"entrypoint":{}}`, 400, "entrypoint"},
		{`{"entrypoint":{"module":"svc"}}`, 400, "entrypoint.function"},
		{`{"submission_id":"a b","entrypoint":{"module":"svc","function":"square"}}`, 400, "submission_id"},
		{`{"namespace":"../x","entrypoint":{"module":"svc","function":"square"}}`, 400, "namespace"},
		{`{"entrypoint":{"module":"svc","function":"square"},"extra":1}`, 400, "extra"},
		{`{"entrypoint":{"module":"svc","function":"square","grants":["env"]}}`, 400, "env"},
		{`{"entrypoint":{"workflow":[1]}}`, 400, "entrypoint.workflow"},
		{`{"entrypoint":{"workflow":{"version":1,"name":"x","steps":[]},"module":"svc"}}`, 400, "not both"},
		{`{"entrypoint":{"module":"svc","function":"nope"}}`, 404, "nope"},
		{`not json`, 400, "job request"},
	} {
		code, b := c.do("POST", "/v1/jobs", []byte(bad.body))
		if code != bad.code || !strings.Contains(string(b), bad.want) {
			t.Errorf("POST %s = %d %s, want %d mentioning %q", bad.body, code, b, bad.code, bad.want)
		}
	}
	c.json("GET", "/v1/jobs/nope", nil, 404)
	c.json("DELETE", "/v1/jobs/nope", nil, 404)
	c.json("GET", "/v1/jobs?status=DONE", nil, 400)
	c.json("GET", "/v1/jobs/sq?wait=maybe", nil, 400)
	c.json("GET", "/v1/jobs/sq?wait=true&timeout_ms=-1", nil, 400)
	// The read-only token reads jobs but cannot submit or stop them.
	read, err := os.ReadFile(filepath.Join(dir, api.ReadTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	ro := client{t: t, url: c.url, token: strings.TrimSpace(string(read))}
	ro.json("GET", "/v1/jobs/sq", nil, 200)
	ro.json("GET", "/v1/namespaces", nil, 200)
	ro.json("POST", "/v1/jobs", []byte(`{"entrypoint":{"module":"svc","function":"square","args":1}}`), 403)
	ro.json("DELETE", "/v1/jobs/sq", nil, 403)
}
