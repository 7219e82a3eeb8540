package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/internal/lumentest"
)

// lumenCLI runs the lumen binary's client command args against node n and returns its output.
func lumenCLI(t *testing.T, n *lumentest.Node, args ...string) (string, error) {
	t.Helper()
	args = append(args, "--url", n.URL, "--token", n.Token)
	cmd := exec.Command(lumentest.Binary(t), args...)
	cmd.Env = append(os.Environ(), "LUMEN_URL=", "LUMEN_TOKEN=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Jobs in a real three-server cluster: a job submitted to a follower through the CLI runs there
// and its record is read from every node; a job stopped through another node stops on the node
// running it; a task job whose node is killed is failed by the leader, and a workflow job
// follows its workflow to the leader; every node ends with the same state and no leaked
// goroutines.
func TestCluster_JobsAreRecordedClusterWide(t *testing.T) {
	c := lumentest.StartCluster(t, 3, 0, "--heartbeat-interval", "200ms", "--dead-after", "1500ms")
	leader := c.Leader(10 * time.Second)
	var followers []*lumentest.Node
	for _, n := range c.Nodes {
		if n != leader {
			followers = append(followers, n)
		}
	}
	f1, f2 := followers[0], followers[1]
	wasm, err := os.ReadFile(guestbuild.Go(t, "../../engine/testdata/guest"))
	if err != nil {
		t.Fatal(err)
	}
	f1.Push(wasm, "svc", "1.0.0")
	ctx := context.Background()
	base := goroutines(t, c)

	// Submitted to a follower by the CLI, waited for, its result printed.
	out, err := lumenCLI(t, f1, "job", "submit", "--id", "sq", "--namespace", "team", "--module", "svc", "--function", "square",
		"--args", "12", "--grant", "objects,tasks,actors", "--metadata", "by=test", "--wait")
	if err != nil || strings.TrimSpace(out) != "144" {
		t.Fatalf("job submit --wait: %v\n%s", err, out)
	}
	// The same id again is refused, through any node.
	if out, err := lumenCLI(t, f2, "job", "submit", "--id", "sq", "--module", "svc", "--function", "square", "--args", "1"); err == nil || !strings.Contains(out, "exists already") {
		t.Fatalf("a taken id: %v\n%s", err, out)
	}
	// A job that runs until stopped, on f1.
	if out, err := lumenCLI(t, f1, "job", "submit", "--id", "forever", "--namespace", "team", "--module", "svc", "--function", "spin",
		"--args", "0", "--grant", "objects,tasks,actors"); err != nil || !strings.Contains(out, "on node "+f1.ID) {
		t.Fatalf("job submit: %v\n%s", err, out)
	}
	// Listed from the other follower: the records are replicated.
	out, err = lumenCLI(t, f2, "job", "list", "--json")
	if err != nil {
		t.Fatalf("job list: %v\n%s", err, out)
	}
	var jobs []jobRecord
	if err := json.Unmarshal([]byte(out), &jobs); err != nil {
		t.Fatalf("job list --json: %v\n%s", err, out)
	}
	byID := map[string]jobRecord{}
	for _, j := range jobs {
		byID[j.ID] = j
	}
	if sq := byID["sq"]; sq.Status != "SUCCEEDED" || sq.Node != f1.ID || sq.Metadata["by"] != "test" || sq.Namespace != "team" {
		t.Fatalf("sq as %s lists it: %+v", f2.ID, sq)
	}
	if fe := byID["forever"]; fe.Status != "RUNNING" || fe.Node != f1.ID {
		t.Fatalf("forever as %s lists it: %+v", f2.ID, fe)
	}
	// Stopped through the leader; the task stops on f1, which gets its cpu back.
	if out, err := lumenCLI(t, leader, "job", "stop", "forever"); err != nil || !strings.Contains(out, "STOPPED") {
		t.Fatalf("job stop: %v\n%s", err, out)
	}
	f1c := f1.Client()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st struct {
			Resources map[string]float64 `json:"resources"`
			Available map[string]float64 `json:"available"`
		}
		if err := f1c.JSON(ctx, "GET", "/v1/status", nil, &st); err != nil {
			t.Fatal(err)
		}
		if st.Available["cpu"] == st.Resources["cpu"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stopped job still holds a cpu on %s: %+v", f1.ID, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out, err := lumenCLI(t, f2, "job", "stop", "forever"); err == nil || !strings.Contains(out, "conflict") {
		t.Fatalf("stopping a stopped job: %v\n%s", err, out)
	}

	// A task job on f2, whose node is then killed: the leader fails it.
	var doomed jobRecord
	body := []byte(`{"submission_id":"doomed","entrypoint":{"module":"svc","function":"spin","args":0,"grants":["objects","tasks","actors"]}}`)
	if err := f2.Client().JSON(ctx, "POST", "/v1/jobs", body, &doomed); err != nil || doomed.Node != f2.ID {
		t.Fatalf("submit to %s: %+v %v", f2.ID, doomed, err)
	}
	// And a workflow job on f2: the leader adopts the workflow, and the job follows it.
	var carried jobRecord
	body = []byte(`{"submission_id":"carried","entrypoint":{"grants":["objects","tasks","actors"],"workflow":{"version":1,"name":"carry",
	  "steps":[{"id":"slow","module":"svc","function":"busy","map":[3000,3000,3000],"args":"${item}"},
	           {"id":"last","module":"svc","function":"square","args":7}],
	  "output":{"slow":"${slow}","last":"${last}"}}}}`)
	if err := f2.Client().JSON(ctx, "POST", "/v1/jobs", body, &carried); err != nil || carried.Status != "RUNNING" {
		t.Fatalf("workflow job on %s: %+v %v", f2.ID, carried, err)
	}
	f2.Kill()
	deadline = time.Now().Add(30 * time.Second)
	for {
		out, err := lumenCLI(t, f1, "job", "status", "doomed")
		if err == nil && strings.Contains(out, "FAILED") {
			if !strings.Contains(out, "node "+f2.ID+" died") {
				t.Fatalf("the job of the dead node: %s", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job of the dead node was not failed: %v\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	lc := leader.Client()
	for {
		var j jobRecord
		err := lc.JSON(ctx, "GET", "/v1/jobs/carried?wait=true&timeout_ms=5000", nil, &j)
		if err == nil && j.ended() {
			if j.Status != "SUCCEEDED" || j.Node != leader.ID || !strings.Contains(j.Message, f2.ID+" died") || !strings.Contains(string(j.Result), `"last":49`) {
				t.Fatalf("the workflow job of the dead node: %+v (result %s)", j, j.Result)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the workflow job of the dead node did not end: %+v %v", j, err)
		}
	}
	var nss struct {
		Namespaces []struct{ Name string } `json:"namespaces"`
	}
	if err := f1c.JSON(ctx, "GET", "/v1/namespaces", nil, &nss); err != nil || len(nss.Namespaces) != 2 {
		t.Fatalf("namespaces: %+v %v", nss, err)
	}
	h := c.Converge(20 * time.Second)
	checkGoroutines(t, c, base)
	t.Logf("every live node holds state %.12s", h)
}

// The flags of `lumen job submit` become the request's body; a mistake names its flag.
func TestJobRequest_FromFlags(t *testing.T) {
	wf := t.TempDir() + "/wf.json"
	if err := os.WriteFile(wf, []byte(`{"version": 1, "name": "w", "steps": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := jobRequest("etl", "j1", "", "svc", "square", "12", "objects, tasks", "by=me,team=data")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"entrypoint":{"args":12,"function":"square","grants":["objects","tasks"],"module":"svc"},"metadata":{"by":"me","team":"data"},"namespace":"etl","submission_id":"j1"}`
	if string(b) != want {
		t.Fatalf("body %s\nwant %s", b, want)
	}
	if b, err = jobRequest("", "", wf, "", "", "", "", ""); err != nil || !strings.Contains(string(b), `"workflow":{"version":1,"name":"w"`) {
		t.Fatalf("workflow body %s %v", b, err)
	}
	for _, c := range []struct {
		wf, module, function, args, meta, want string
	}{
		{wf, "svc", "", "", "", "not both"},
		{"", "svc", "", "", "", "--module and --function"},
		{"", "", "", "", "", "--workflow FILE"},
		{"", "svc", "f", "text", "", "--args"},
		{"", "svc", "f", "", "novalue", "--metadata"},
		{t.TempDir() + "/none.json", "", "", "", "", "--workflow"},
	} {
		if _, err := jobRequest("", "", c.wf, c.module, c.function, c.args, "", c.meta); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error mentioning %q", c, err, c.want)
		}
	}
}
