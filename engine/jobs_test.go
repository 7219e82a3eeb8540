package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/plugins"
	"github.com/lumenflow/lumen/sdk/abi"
)

func taskJob(id, ns, fn, args string) engine.JobSpec {
	return engine.JobSpec{SubmissionID: id, Namespace: ns, Entrypoint: engine.JobEntrypoint{
		Module: "svc", Function: fn, Args: json.RawMessage(args), Grants: grantAll}}
}

var runs atomic.Int64

// runSuffix makes the ids of a test's jobs unique on the shared engine.
func runSuffix() string { return "-" + strconv.FormatInt(runs.Add(1), 10) }

func waitJobEnd(t *testing.T, e *engine.Engine, id string) *engine.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	j, err := e.Jobs().Wait(ctx, id)
	if err != nil {
		t.Fatalf("job %s: %v (%+v)", id, err, j)
	}
	return j
}

// waitStatus polls job id until it has status want.
func waitStatus(t *testing.T, e *engine.Engine, id, want string) *engine.Job {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		j, err := e.Jobs().Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Status == want {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s is %s, want %s: %+v", id, j.Status, want, j)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestJobs_TaskJobSucceedsWithItsResult(t *testing.T) {
	sfx := runSuffix() // the shared engine keeps the records of earlier runs (-count)
	e := sharedEngine(t)
	ctx := context.Background()
	spec := taskJob("square-7"+sfx, "", "square", "7")
	spec.Metadata = map[string]string{"owner": "ana"}
	j, err := e.Jobs().Submit(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if j.ID != "square-7"+sfx || j.Kind != engine.JobKindTask || j.Namespace != engine.DefaultNamespace || j.Entrypoint != "svc.square" {
		t.Fatalf("record %+v", j)
	}
	if j.Status != engine.JobRunning && j.Status != engine.JobSucceeded {
		t.Fatalf("status after submit %s", j.Status)
	}
	j = waitJobEnd(t, e, "square-7"+sfx)
	if j.Status != engine.JobSucceeded || j.Started == nil || j.Ended == nil || j.Ended.Before(*j.Started) || j.Node != "local" || j.Metadata["owner"] != "ana" {
		t.Fatalf("ended %+v", j)
	}
	out, err := e.Jobs().Result(ctx, "square-7"+sfx)
	if err != nil || string(out) != "49" {
		t.Fatalf("result %q %v", out, err)
	}
	// A generated id when none is given.
	g, err := e.Jobs().Submit(ctx, taskJob("", "", "square", "3"))
	if err != nil || !strings.HasPrefix(g.ID, "job-") {
		t.Fatalf("generated id %+v %v", g, err)
	}
	waitJobEnd(t, e, g.ID)
}

func TestJobs_FailedTaskCarriesTheGuestsError(t *testing.T) {
	sfx := runSuffix() // the shared engine keeps the records of earlier runs (-count)
	e := sharedEngine(t)
	ctx := context.Background()
	if _, err := e.Jobs().Submit(ctx, taskJob("fails"+sfx, "", "fail", "7")); err != nil {
		t.Fatal(err)
	}
	j := waitJobEnd(t, e, "fails"+sfx)
	if j.Status != engine.JobFailed || j.Error == nil || j.Error.Code != "E_FAIL" || !strings.Contains(j.Message, "failed on 7") {
		t.Fatalf("record %+v (error %+v)", j, j.Error)
	}
	_, err := e.Jobs().Result(ctx, "fails"+sfx)
	var ae *abi.Error
	if !errors.As(err, &ae) || ae.Code != "E_FAIL" {
		t.Fatalf("result of a failed job: %v", err)
	}
}

func TestJobs_TakenSubmissionIDIsRefused(t *testing.T) {
	sfx := runSuffix() // the shared engine keeps the records of earlier runs (-count)
	e := sharedEngine(t)
	ctx := context.Background()
	if _, err := e.Jobs().Submit(ctx, taskJob("once"+sfx, "", "square", "2")); err != nil {
		t.Fatal(err)
	}
	_, err := e.Jobs().Submit(ctx, taskJob("once"+sfx, "", "square", "3"))
	if !errors.Is(err, engine.ErrJobExists) || !strings.Contains(err.Error(), `"once-`) {
		t.Fatalf("second job with the same id: %v", err)
	}
	if out, err := e.Jobs().Result(ctx, "once"+sfx); err == nil && string(out) != "4" {
		t.Fatalf("the first job's result changed: %s", out)
	}
}

func TestJobs_BadSubmissionsAreRefusedBeforeAnyRecord(t *testing.T) {
	e := sharedEngine(t)
	ctx := context.Background()
	for _, c := range []struct {
		name string
		spec engine.JobSpec
		kind abi.ErrorKind
		want string
	}{
		{"nothing to run", engine.JobSpec{SubmissionID: "bad-1"}, abi.KindBadInput, "entrypoint"},
		{"both", engine.JobSpec{SubmissionID: "bad-2", Entrypoint: engine.JobEntrypoint{Workflow: json.RawMessage(diamond), Module: "svc", Function: "square"}}, abi.KindBadInput, "not both"},
		{"no function", engine.JobSpec{SubmissionID: "bad-3", Entrypoint: engine.JobEntrypoint{Module: "svc"}}, abi.KindBadInput, "entrypoint.function"},
		{"bad id", taskJob("has space", "", "square", "1"), abi.KindBadInput, "submission_id"},
		{"reserved id", taskJob("default", "", "square", "1"), abi.KindBadInput, "submission_id"},
		{"bad namespace", taskJob("bad-4", "a/b", "square", "1"), abi.KindBadInput, "namespace"},
		{"bad args", taskJob("bad-5", "", "square", "{"), abi.KindBadInput, "entrypoint.args"},
		{"unknown function", taskJob("bad-6", "", "nope", "1"), abi.KindNotFound, "nope"},
		{"invalid workflow", engine.JobSpec{SubmissionID: "bad-7", Entrypoint: engine.JobEntrypoint{Workflow: json.RawMessage(`{"version": 1, "name": "x", "steps": [{"id": "a", "module": "nope", "function": "f"}]}`)}}, abi.KindBadInput, "$.steps[0].module"},
	} {
		_, err := e.Jobs().Submit(ctx, c.spec)
		var ae *abi.Error
		if !errors.As(err, &ae) || ae.Kind != c.kind || !strings.Contains(ae.Message, c.want) {
			t.Errorf("%s: %v, want %s mentioning %q", c.name, err, c.kind, c.want)
			continue
		}
		if _, err := e.Jobs().Get(ctx, c.spec.SubmissionID); !errors.Is(err, engine.ErrJobNotFound) {
			t.Errorf("%s: refused, yet recorded: %v", c.name, err)
		}
	}
	many := taskJob("bad-8", "", "square", "1")
	many.Metadata = map[string]string{}
	for i := range engine.MaxJobMetadata + 1 {
		many.Metadata[string(rune('a'+i%26))+strings.Repeat("x", i)] = "v"
	}
	if _, err := e.Jobs().Submit(ctx, many); err == nil || !strings.Contains(err.Error(), "metadata") {
		t.Errorf("too much metadata: %v", err)
	}
	if _, err := e.Jobs().Stop(ctx, "no-such-job"); !errors.Is(err, engine.ErrJobNotFound) {
		t.Errorf("stopping an unknown job: %v", err)
	}
	if _, err := e.Jobs().List(ctx, engine.JobFilter{Status: "DONE"}); err == nil || !strings.Contains(err.Error(), "status") {
		t.Errorf("listing by an unknown status: %v", err)
	}
}

func TestJobs_WorkflowJobFollowsItsWorkflow(t *testing.T) {
	sfx := runSuffix() // the shared engine keeps the records of earlier runs (-count)
	e := sharedEngine(t)
	ctx := context.Background()
	j, err := e.Jobs().Submit(ctx, engine.JobSpec{SubmissionID: "wf-job" + sfx, Namespace: "etl",
		Entrypoint: engine.JobEntrypoint{Workflow: json.RawMessage(diamond), Grants: grantAll}})
	if err != nil {
		t.Fatal(err)
	}
	if j.Kind != engine.JobKindWorkflow || j.Workflow == "" || j.Entrypoint != "workflow diamond" {
		t.Fatalf("record %+v", j)
	}
	j = waitJobEnd(t, e, "wf-job"+sfx)
	if j.Status != engine.JobSucceeded {
		t.Fatalf("ended %+v", j)
	}
	out, err := e.Jobs().Result(ctx, "wf-job"+sfx)
	if want := `{"a":9,"b":[1,4,9],"c":81,"d":"a=9 c=81"}`; err != nil || string(out) != want {
		t.Fatalf("result %s %v, want %s", out, err, want)
	}
	st, err := e.Workflows().Get(j.Workflow)
	if err != nil || st.Job != "wf-job"+sfx || st.State != engine.WorkflowSucceeded {
		t.Fatalf("workflow %+v %v", st, err)
	}

	bad := `{"version": 1, "name": "bad", "steps": [{"id": "boom", "module": "svc", "function": "fail", "args": 3}]}`
	if _, err := e.Jobs().Submit(ctx, engine.JobSpec{SubmissionID: "wf-fails" + sfx, Entrypoint: engine.JobEntrypoint{Workflow: json.RawMessage(bad), Grants: grantAll}}); err != nil {
		t.Fatal(err)
	}
	f := waitJobEnd(t, e, "wf-fails"+sfx)
	if f.Status != engine.JobFailed || !strings.Contains(f.Message, `step "boom"`) || !strings.Contains(f.Message, "failed on 3") || f.Error == nil || f.Error.Code != "E_FAIL" {
		t.Fatalf("failed workflow job %+v", f)
	}
}

// Stopping a job cancels its task, kills its actors and frees its objects; the record says
// STOPPED, and a second stop is refused as the job has ended.
func TestJobs_StopCancelsTheTaskAndReleasesTheJobsWork(t *testing.T) {
	sfx := runSuffix() // the shared engine keeps the records of earlier runs (-count)
	e := sharedEngine(t)
	ctx := context.Background()
	full, actors := e.Available()["cpu"], e.Stats().Actors
	if _, err := e.Jobs().Submit(ctx, taskJob("spinner"+sfx, "", "spin", "0")); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, "spinner"+sfx, engine.JobRunning)
	// The job's actor and object, as a client of the job would make them.
	if _, err := e.Actors().Create(ctx, "spinner"+sfx, &abi.ActorCreateRequest{Module: "svc", Actor: "Counter", Args: []byte("1")}, allCaps); err != nil {
		t.Fatal(err)
	}
	h, err := e.Objects().Put("spinner"+sfx, []byte("kept"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := e.Objects().Put("other-job", []byte("not the job's"))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.Available()["cpu"] == full {
		if time.Now().After(deadline) {
			t.Fatal("the spinning task never took its cpu")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if e.Stats().Actors != actors+1 {
		t.Fatalf("actors %d, want %d", e.Stats().Actors, actors+1)
	}
	j, err := e.Jobs().Stop(ctx, "spinner"+sfx)
	if err != nil || j.Status != engine.JobStopped || j.Ended == nil {
		t.Fatalf("stop: %+v %v", j, err)
	}
	for e.Available()["cpu"] != full || e.Stats().Actors != actors {
		if time.Now().After(deadline) {
			t.Fatalf("after the stop: cpu %v of %v free, %d actors", e.Available()["cpu"], full, e.Stats().Actors)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := e.Objects().Get(ctx, "spinner"+sfx, h, 0); err == nil {
		t.Fatal("the stopped job's object is still there")
	}
	if b, err := e.Objects().Get(ctx, "other-job", other, 0); err != nil || string(b) != "not the job's" {
		t.Fatalf("another job's object: %q %v", b, err)
	}
	if _, err := e.Jobs().Stop(ctx, "spinner"+sfx); !errors.Is(err, engine.ErrJobEnded) {
		t.Fatalf("second stop: %v", err)
	}
	// The record stays STOPPED: the cancelled task does not overwrite it.
	time.Sleep(50 * time.Millisecond)
	if j, _ := e.Jobs().Get(ctx, "spinner"+sfx); j.Status != engine.JobStopped {
		t.Fatalf("after the stop: %+v", j)
	}
}

func TestJobs_StopCancelsTheWorkflow(t *testing.T) {
	sfx := runSuffix() // the shared engine keeps the records of earlier runs (-count)
	e := sharedEngine(t)
	ctx := context.Background()
	doc := `{"version": 1, "name": "forever", "steps": [{"id": "s", "module": "svc", "function": "spin", "args": 0}]}`
	j, err := e.Jobs().Submit(ctx, engine.JobSpec{SubmissionID: "wf-stop" + sfx, Entrypoint: engine.JobEntrypoint{Workflow: json.RawMessage(doc), Grants: grantAll}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Jobs().Stop(ctx, "wf-stop"+sfx); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := e.Workflows().Result(wctx, j.Workflow); err == nil || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("workflow after the stop: %v", err)
	}
	st, _ := e.Workflows().Get(j.Workflow)
	if st.State != engine.WorkflowCancelled {
		t.Fatalf("workflow %s", st.State)
	}
	if got, _ := e.Jobs().Get(ctx, "wf-stop"+sfx); got.Status != engine.JobStopped || got.Message != "stopped by request" {
		t.Fatalf("job %+v", got)
	}
}

func TestJobs_NamespacesAreRecordedOnFirstUseAndFilterTheList(t *testing.T) {
	sfx := runSuffix() // the shared engine keeps the records of earlier runs (-count)
	e := sharedEngine(t)
	ctx := context.Background()
	for _, s := range []engine.JobSpec{taskJob("a1"+sfx, "team-a"+sfx, "square", "1"), taskJob("a2"+sfx, "team-a"+sfx, "fail", "2"), taskJob("b1"+sfx, "team-b"+sfx, "square", "3")} {
		if _, err := e.Jobs().Submit(ctx, s); err != nil {
			t.Fatal(err)
		}
		waitJobEnd(t, e, s.SubmissionID)
	}
	nss, err := e.Jobs().Namespaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, ns := range nss {
		seen[ns.Name]++
		if ns.Created.IsZero() {
			t.Errorf("namespace %s has no creation time", ns.Name)
		}
	}
	if seen["team-a"+sfx] != 1 || seen["team-b"+sfx] != 1 {
		t.Fatalf("namespaces %+v", nss)
	}
	ids := func(f engine.JobFilter) string {
		js, err := e.Jobs().List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, j := range js {
			out = append(out, j.ID)
		}
		return strings.Join(out, ",")
	}
	if got := ids(engine.JobFilter{Namespace: "team-a" + sfx}); got != "a2"+sfx+",a1"+sfx {
		t.Errorf("team-a: %s", got)
	}
	if got := ids(engine.JobFilter{Namespace: "team-a" + sfx, Status: engine.JobFailed}); got != "a2"+sfx {
		t.Errorf("failed in team-a: %s", got)
	}
	if got := ids(engine.JobFilter{Namespace: "team-b" + sfx}); got != "b1"+sfx {
		t.Errorf("team-b: %s", got)
	}
	if got := ids(engine.JobFilter{}); !strings.Contains(got, "b1"+sfx+",a2"+sfx+",a1"+sfx) {
		t.Errorf("all, newest first: %s", got)
	}
}

// The records are the replicated state's: a restarted node still has them; a task job that was
// running when the node stopped is failed by the node as it comes back (tasks do not survive a
// restart), and a workflow job resumes with its workflow.
func TestJobs_RecordsSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	// The shared engine has compiled the guest: its compilation cache spares this one the
	// compile, the slow part of opening an engine under the race detector.
	sharedEngine(t)
	if err := os.CopyFS(filepath.Join(dir, "compile-cache"), os.DirFS(filepath.Join(shared.dir, "compile-cache"))); err != nil {
		t.Fatal(err)
	}
	e, _ := open(t, engine.Config{DataDir: dir})
	ctx := context.Background()
	if _, err := e.Jobs().Submit(ctx, taskJob("done", "keep", "square", "9")); err != nil {
		t.Fatal(err)
	}
	waitJobEnd(t, e, "done")
	if _, err := e.Jobs().Submit(ctx, taskJob("cut", "keep", "spin", "0")); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, "cut", engine.JobRunning)
	// A workflow job cut by the restart too: its workflow resumes, and the job with it.
	doc := `{"version": 1, "name": "long", "steps": [
	  {"id": "slow", "module": "svc", "function": "busy", "map": [5000, 5000], "args": "${item}"},
	  {"id": "last", "module": "svc", "function": "square", "args": 4}],
	  "output": {"slow": "${slow}", "last": "${last}"}}`
	wj, err := e.Jobs().Submit(ctx, engine.JobSpec{SubmissionID: "resumes", Namespace: "keep", Entrypoint: engine.JobEntrypoint{Workflow: json.RawMessage(doc), Grants: grantAll}})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := e.Workflows().Get(wj.Workflow); st.State != engine.WorkflowRunning {
		t.Fatalf("the workflow ended before the restart: %+v", st)
	}
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e2, err := engine.Open(ctx, engine.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close(ctx)
	if out, err := e2.Jobs().Result(ctx, "done"); err != nil || string(out) != "81" {
		t.Fatalf("result after the restart: %q %v", out, err)
	}
	if got := waitJobEnd(t, e2, "resumes"); got.Status != engine.JobSucceeded {
		t.Fatalf("the workflow job after the restart: %+v", got)
	}
	if st, _ := e2.Workflows().Get(wj.Workflow); st.Resumed != 1 {
		t.Fatalf("the workflow was resumed %d times, want 1", st.Resumed)
	}
	if out, err := e2.Jobs().Result(ctx, "resumes"); err != nil || string(out) != `{"slow":[5000,5000],"last":16}` {
		t.Fatalf("the resumed job's result: %s %v", out, err)
	}
	cut := waitStatus(t, e2, "cut", engine.JobFailed)
	if !strings.Contains(cut.Message, "restarted") {
		t.Fatalf("the job cut by the restart: %+v", cut)
	}
	if nss, err := e2.Jobs().Namespaces(ctx); err != nil || len(nss) != 1 || nss[0].Name != "keep" {
		t.Fatalf("namespaces after the restart: %+v %v", nss, err)
	}
	if _, err := e2.Jobs().Submit(ctx, taskJob("done", "keep", "square", "1")); !errors.Is(err, engine.ErrJobExists) {
		t.Fatalf("a taken id after the restart: %v", err)
	}
}

// benchEngine opens an engine with the test guest as "svc".
func benchEngine(b *testing.B) *engine.Engine {
	wasm, err := os.ReadFile(guestbuild.Go(b, "testdata/guest"))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	e, err := engine.Open(ctx, engine.Config{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close(ctx) })
	if _, err := e.Modules().Add(ctx, wasm, plugins.AddOptions{Name: "svc", Version: "1.0.0"}); err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkJobs_TaskJob submits square(3) as a job and waits for its end: the task plus the
// job's records (created, running, ended with the result), each a raft commit.
func BenchmarkJobs_TaskJob(b *testing.B) {
	e := benchEngine(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		j, err := e.Jobs().Submit(ctx, taskJob("", "bench", "square", "3"))
		if err != nil {
			b.Fatal(err)
		}
		if j, err = e.Jobs().Wait(ctx, j.ID); err != nil || j.Status != engine.JobSucceeded {
			b.Fatalf("%+v %v", j, err)
		}
	}
}

// BenchmarkJobs_TaskBaseline is the same call as a plain task (Submit, Get) of a new job each
// time, as a job's task is (instances are pooled per job): the baseline of
// BenchmarkJobs_TaskJob, whose difference is the job's records.
func BenchmarkJobs_TaskBaseline(b *testing.B) {
	e := benchEngine(b)
	ctx := context.Background()
	grants := host.Grants{Capabilities: grantAll}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		job := "bench-" + strconv.Itoa(i)
		h, err := e.Tasks().Submit(ctx, job, &abi.TaskRequest{Module: "svc", Function: "square", Args: json.RawMessage("3")}, grants)
		if err != nil {
			b.Fatal(err)
		}
		if out, err := e.Objects().Get(ctx, job, h, -1); err != nil || string(out) != "9" {
			b.Fatalf("%s %v", out, err)
		}
		e.Objects().Release(job, h)
	}
}
