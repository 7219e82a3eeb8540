package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/lumenflow/lumen/engine/api"
	"github.com/lumenflow/lumen/engine/client"
)

// restServer is the engine's REST API served on a loopback port, and a client of it.
type restServer struct {
	hs   *http.Server
	done chan struct{}
	c    *client.Client
}

// restServer starts the REST API of the run's engine on first use.
func (b *env) restServer() (*restServer, error) {
	b.restOnce.Do(func() { b.rest, b.restErr = startREST(b) })
	return b.rest, b.restErr
}

func startREST(b *env) (*restServer, error) {
	srv, err := api.New(b.eng, api.Config{MaxBodyBytes: int64(b.opts.PutBytes) + 1<<20})
	if err != nil {
		return nil, fmt.Errorf("REST API: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("REST API: listen: %w", err)
	}
	rs := &restServer{hs: &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}, done: make(chan struct{})}
	go func() {
		defer close(rs.done)
		rs.hs.Serve(ln)
	}()
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}
	rs.c = &client.Client{URL: "http://" + ln.Addr().String(), Token: srv.AdminToken(), HTTP: &http.Client{Transport: tr, Timeout: time.Minute}}
	return rs, nil
}

func (rs *restServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rs.hs.Shutdown(ctx)
	<-rs.done
	rs.c.HTTP.CloseIdleConnections()
}

// put stores data as an object of job with POST /v1/objects and returns its handle.
func (rs *restServer) put(ctx context.Context, job string, data []byte) (int64, error) {
	var out struct {
		Ref int64 `json:"ref"`
	}
	b, _, err := rs.c.Do(ctx, http.MethodPost, "/v1/objects?job="+job, data)
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Ref <= 0 {
		return 0, fmt.Errorf("POST /v1/objects answered %q", b)
	}
	return out.Ref, nil
}

// restSubmit submits the 3-step chain with POST /v1/workflows from Clients client goroutines,
// each waiting for its workflow's result before submitting the next; workflows per second, the
// latency of the submission (stored durably before it answers) and, as an extra, of the whole
// round trip. Beside it: the same through Engine.SubmitWorkflow and WorkflowResult, no HTTP.
func restSubmit(b *env) (*Result, error) {
	rs, err := b.restServer()
	if err != nil {
		return nil, err
	}
	doc, n := b.chain(chainInput), b.opts.Clients
	want := chainInput

	var direct latencies
	inProcess := many(n, func(int) (int, error) {
		t0 := time.Now()
		id, err := b.eng.SubmitWorkflow(b.ctx, doc, b.job, nil)
		if err != nil {
			return 0, fmt.Errorf("submit workflow: %w", err)
		}
		out, err := b.eng.Workflows().Result(b.ctx, id)
		if err != nil {
			return 0, fmt.Errorf("workflow %s: %w", id, err)
		}
		if string(out) != want {
			return 0, fmt.Errorf("workflow %s returned %q, want %s", id, out, want)
		}
		direct.add(time.Since(t0))
		return 1, nil
	}, &direct)
	var submit, total latencies
	overREST := many(n, func(int) (int, error) {
		t0 := time.Now()
		st, err := rs.c.SubmitWorkflow(b.ctx, doc, b.job, nil)
		if err != nil {
			return 0, fmt.Errorf("POST /v1/workflows: %w", err)
		}
		submit.add(time.Since(t0))
		out, done, err := rs.c.WorkflowResult(b.ctx, st.ID, time.Minute)
		if err == nil && !done {
			err = errors.New("still running after a minute")
		}
		if err != nil {
			return 0, fmt.Errorf("workflow %s result: %w", st.ID, err)
		}
		if string(out) != want {
			return 0, fmt.Errorf("workflow %s returned %q, want %s", st.ID, out, want)
		}
		total.add(time.Since(t0))
		return 1, nil
	}, &submit, &total)
	v, base, err := compare(b.ctx, b.opts.Duration, overREST, inProcess)
	if err != nil {
		return nil, err
	}
	return &Result{Value: v, Unit: UnitOps, Lat: submit.summary(),
		Baseline: &Figure{Name: "engine_submit_workflow", Value: base, Unit: UnitOps, Lat: direct.summary(),
			Notes: "Engine.SubmitWorkflow + WorkflowResult in process, same clients: the cost without HTTP"},
		Extra: []Figure{{Name: "rest_round_trip", Value: total.summary().P50, Unit: UnitMicros, Lat: total.summary(),
			Notes: "POST /v1/workflows, then GET its result with wait=true: submission to output; value is the p50"}},
		Notes: fmt.Sprintf("%d clients on loopback HTTP, each submitting the 3-step echo chain and waiting for its result before the next; workflows counted; latency is of the POST, which answers once the workflow is stored durably (fsync)", n)}, nil
}
