package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/engine/api"
	"github.com/lumenflow/lumen/engine/peer"
	"github.com/lumenflow/lumen/engine/serving"
)

// Every JSON body the API reads holds one JSON value: data after it is refused with 400
// bad_input naming it, on the public routes, the peer routes and (in OpenAI's error shape) the
// OpenAI-compatible routes. The same bodies without the trailer are not refused for it.
func TestAPI_JSONBodiesRefuseTrailingData(t *testing.T) {
	c, _, dir := setup(t)
	routes := []struct{ path, body string }{
		{"/v1/tasks", `{"module":"m","function":"f"}`},
		{"/v1/wait", `{"handles":[1],"num_returns":1,"timeout_ms":1}`},
		{"/v1/actors", `{"module":"m","actor":"A"}`},
		{"/v1/placement_groups?wait=false", `{"strategy":"PACK","bundles":[{"cpu":1}]}`},
		{"/v1/jobs", `{"entrypoint":{"module":"m","function":"f"}}`},
		{"/v1/workflows", `{"version":1,"name":"w","steps":[{"id":"a","module":"m","function":"f"}]}`},
		{"/v1/compiled", `{"version":1,"name":"w","steps":[{"id":"a","module":"m","function":"f"}]}`},
		{"/v1/data/jobs", `{"source":{"csv":"x.csv"}}`},
	}
	trailers := []string{" {}", "}", "]", "x", "\n\"more\"", "\x00"}
	for _, r := range routes {
		if code, b := c.do("POST", r.path, []byte(r.body)); strings.Contains(string(b), "trailing data") {
			t.Errorf("POST %s %s without a trailer: %d %s", r.path, r.body, code, b)
		}
		for _, tr := range trailers {
			code, b := c.do("POST", r.path, []byte(r.body+tr))
			var e struct {
				Error struct{ Kind, Message string }
			}
			json.Unmarshal(b, &e)
			if code != 400 || e.Error.Kind != "bad_input" || !strings.Contains(e.Error.Message, "trailing data") {
				t.Errorf("POST %s %q: %d %s, want 400 bad_input naming the trailing data", r.path, r.body+tr, code, b)
			}
		}
	}

	// A peer route, with the node credential.
	join, err := os.ReadFile(filepath.Join(dir, engine.JoinTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	node := client{t: t, url: c.url, token: peer.Credential(strings.TrimSpace(string(join)))}
	for _, tr := range trailers {
		code, b := node.do("POST", "/peer/v1/cluster/heartbeat", []byte(`{"id":"n9"}`+tr))
		if code != 400 || !strings.Contains(string(b), "data after the message") {
			t.Errorf("peer heartbeat with %q after it: %d %s", tr, code, b)
		}
	}
}

// The OpenAI-compatible routes refuse data after the request's JSON in OpenAI's error shape.
func TestOpenAI_RefusesTrailingData(t *testing.T) {
	c, _, stop := modelServer(t, t.TempDir(), serving.Config{Dir: tinyModelDir(t), ID: "tiny"})
	defer stop()
	req := `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":2}`
	if code, b := c.do("POST", "/v1/chat/completions", []byte(req)); code != 200 {
		t.Fatalf("without a trailer: %d %s", code, b)
	}
	for _, tr := range []string{"}", "]", " {}", "x"} {
		code, b := c.do("POST", "/v1/chat/completions", []byte(req+tr))
		var e struct {
			Error struct{ Message, Type string }
		}
		json.Unmarshal(b, &e)
		if code != 400 || e.Error.Type != "invalid_request_error" || !strings.Contains(e.Error.Message, "data after the JSON") {
			t.Errorf("chat with %q after it: %d %s", tr, code, b)
		}
	}
}

// heap samples the process's heap while f runs and returns f's allocations, the peak heap in
// use seen (sampled every 2 ms) and the heap in use after a GC, each relative to before f.
func heap(f func()) (alloc, peak, after int64) {
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var top uint64
	wg.Add(1)
	go func() {
		defer wg.Done()
		var m runtime.MemStats
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&m)
			top = max(top, m.HeapAlloc)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	f()
	close(stop)
	wg.Wait()
	var end runtime.MemStats
	runtime.ReadMemStats(&end)
	alloc = int64(end.TotalAlloc - before.TotalAlloc)
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&end)
	return alloc, int64(top) - int64(before.HeapAlloc), int64(end.HeapAlloc) - int64(before.HeapAlloc)
}

// A guest whose output is 60 MiB of NULs (six-fold as JSON's \u0000) comes back as base64 within
// the inline cap, with the count of what is dropped; so does a stdout flood's log. What the call
// allocates, and what stays after it, is measured and bounded.
func TestAPI_GuestOutputCannotAmplify(t *testing.T) {
	c, _, _ := setup(t)
	wasm, err := os.ReadFile("testdata/nulflood.wasm")
	if err != nil {
		t.Fatal(err)
	}
	c.json("POST", "/v1/modules?name=nul&version=1.0.0", wasm, 201)
	const cap = api.DefaultMaxInlineBytes
	const overhead = 1 << 10

	var code int
	var size int64
	var res struct {
		Output        json.RawMessage `json:"output"`
		OutputText    *string         `json:"output_text"`
		OutputBase64  []byte          `json:"output_base64"`
		OutputDropped int             `json:"output_dropped_bytes"`
		Log           *string         `json:"log"`
		LogBase64     []byte          `json:"log_base64"`
		LogDropped    int             `json:"log_dropped_bytes"`
	}
	call := func(fn string, in []byte) []byte {
		req, _ := http.NewRequest("POST", c.url+"/v1/modules/nul/call/"+fn, bytes.NewReader(in))
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		code = resp.StatusCode
		// Count the whole response, keep its first cap+overhead bytes.
		var keep bytes.Buffer
		size, err = io.Copy(&keep, io.LimitReader(resp.Body, cap+overhead))
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		size += n
		return keep.Bytes()
	}
	var b []byte
	call("nuls", nil) // warm: compile and instantiate outside the measure
	alloc, peak, after := heap(func() { b = call("nuls", nil) })
	t.Logf("60 MiB of NULs: %d response bytes; allocated %.1f MiB, peak heap +%.1f MiB, after +%.1f MiB",
		size, float64(alloc)/(1<<20), float64(peak)/(1<<20), float64(after)/(1<<20))
	if code != 200 || size > cap+overhead {
		t.Fatalf("60 MiB of NULs: %d with %d bytes, want 200 within %d", code, size, cap+overhead)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if res.Output != nil || res.OutputText != nil || len(res.OutputBase64) == 0 || len(res.OutputBase64)+res.OutputDropped != 60<<20 ||
		bytes.ContainsFunc(res.OutputBase64, func(r rune) bool { return r != 0 }) {
		t.Fatalf("output: %d bytes base64, %d dropped, json %v text %v", len(res.OutputBase64), res.OutputDropped, res.Output != nil, res.OutputText != nil)
	}
	t.Logf("carried %d bytes of the output (%d dropped) and the whole %d-byte log", len(res.OutputBase64), res.OutputDropped, len(res.LogBase64))
	if len(res.LogBase64) != 512<<10 || res.LogDropped != 0 {
		t.Fatalf("log: %d bytes base64, %d dropped, want the whole 512 KiB", len(res.LogBase64), res.LogDropped)
	}
	// The host holds the 60 MiB output once; nothing the size of its JSON escape (360 MiB) is made,
	// and nothing stays.
	if alloc > 256<<20 || after > 32<<20 {
		t.Fatalf("allocated %d bytes, %d still in use after", alloc, after)
	}

	// A stdout flood stops at the host's output limit; its log comes back as base64.
	b = call("flood_stdout", nil)
	res.LogBase64, res.LogDropped = nil, 0
	json.Unmarshal(b, &res)
	if code != 422 || size > cap+overhead || len(res.LogBase64) != 1<<20 || !strings.Contains(string(b), `"limit":"output"`) {
		t.Fatalf("stdout flood: %d, %d bytes, log %d bytes: %.300s", code, size, len(res.LogBase64), b)
	}

	// Text stays text, JSON stays JSON, other bytes are base64.
	for _, tc := range []struct{ in, key string }{
		{"héllo <b>\n", "output_text"}, {`{"a": 1}`, "output"}, {"nul\x00", "output_base64"}, {"\xff", "output_base64"},
	} {
		b := call("text", []byte(tc.in))
		var m map[string]json.RawMessage
		json.Unmarshal(b, &m)
		var back []byte
		switch tc.key {
		case "output_text":
			var s string
			json.Unmarshal(m[tc.key], &s)
			back = []byte(s)
		case "output":
			back = []byte(tc.in)
			if string(m["output"]) != `{"a":1}` {
				t.Errorf("JSON output: %s", m["output"])
			}
		case "output_base64":
			var s string
			json.Unmarshal(m[tc.key], &s)
			back, _ = base64.StdEncoding.DecodeString(s)
		}
		if code != 200 || m[tc.key] == nil || string(back) != tc.in {
			t.Errorf("output %q: %d %s, want it as %s", tc.in, code, b, tc.key)
		}
	}
}
