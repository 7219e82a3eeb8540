package openai

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
)

// BatchRequest is one line of a batch, decoded. Err is set when the line's body failed
// validation: the runner reports it as that line's result without running it.
type BatchRequest struct {
	CustomID string
	Request  *ChatCompletionRequest
	Err      *Error
}

// BatchResult is the outcome of one line: a completion or an error.
type BatchResult struct {
	CustomID   string
	Completion *ChatCompletion
	Err        *Error
}

// BatchRunner runs the requests of a batch. The default is [PoolRunner]; the engine plugs in a
// durable workflow-based runner.
type BatchRunner interface {
	// RunBatch returns one result per request, in input order. progress, when non-nil, is
	// called once per finished request (never concurrently). When ctx is cancelled it returns
	// what finished, with a context error for the rest.
	RunBatch(ctx context.Context, batchID string, reqs []BatchRequest, progress func(i int, r BatchResult)) ([]BatchResult, error)
}

// PoolRunner runs a batch's requests on a Backend, at most Concurrency at a time (default 4).
type PoolRunner struct {
	Backend     Backend
	Concurrency int
}

// RunBatch implements BatchRunner.
func (p *PoolRunner) RunBatch(ctx context.Context, batchID string, reqs []BatchRequest, progress func(int, BatchResult)) ([]BatchResult, error) {
	n := p.Concurrency
	if n <= 0 {
		n = 4
	}
	results := make([]BatchResult, len(reqs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, n)
	for i := range reqs {
		i := i
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			res := RunOne(ctx, p.Backend, reqs[i])
			mu.Lock()
			results[i] = res
			if progress != nil {
				progress(i, res)
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return results, ctx.Err()
}

// RunOne runs one batch request on b: a line that failed validation, names an unknown model or
// is cancelled yields an error result.
func RunOne(ctx context.Context, b Backend, r BatchRequest) BatchResult {
	res := BatchResult{CustomID: r.CustomID}
	switch {
	case r.Err != nil:
		res.Err = r.Err
	case ctx.Err() != nil:
		res.Err = errCancelled()
	default:
		if e := checkModel(b, r.Request.Model); e != nil {
			res.Err = e
			break
		}
		c, err := safeCall(ctx, b, r.Request, nil)
		if err != nil && ctx.Err() != nil {
			res.Err = errCancelled()
			break
		}
		if err != nil {
			res.Err = AsError(err)
			break
		}
		fillCompletion(c, r.Request.Model)
		res.Completion = c
	}
	return res
}

func errCancelled() *Error {
	return &Error{Status: 499, Type: TypeServer, Message: "The batch was cancelled before this request finished.", Code: strp("batch_cancelled")}
}

// MaxBatchLines is the most requests one batch input file may hold.
const MaxBatchLines = 50000

// ParseBatchInput reads a batch input file (JSONL of {custom_id, method, url, body}) for the
// given endpoint. Problems with the file itself (bad JSON, a missing or repeated custom_id, a
// wrong method or url) are returned as BatchErrors with their line; a body that fails request
// validation becomes that line's Err.
func ParseBatchInput(data []byte, endpoint string, opt ValidateOptions) ([]BatchRequest, []BatchError) {
	var reqs []BatchRequest
	var errs []BatchError
	bad := func(line int, code, param, format string, args ...any) {
		l := line
		e := BatchError{Code: code, Message: fmt.Sprintf(format, args...), Line: &l}
		if param != "" {
			e.Param = strp(param)
		}
		errs = append(errs, e)
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), len(data)+1)
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		if len(reqs) >= MaxBatchLines {
			bad(line, "too_many_requests", "", "A batch may hold at most %d requests.", MaxBatchLines)
			break
		}
		var in BatchInputLine
		if err := json.Unmarshal(text, &in); err != nil {
			bad(line, "invalid_json_line", "", "This line is not valid JSON: %v.", err)
			continue
		}
		switch {
		case in.CustomID == "":
			bad(line, "missing_custom_id", "custom_id", "custom_id is required.")
			continue
		case seen[in.CustomID]:
			bad(line, "duplicate_custom_id", "custom_id", "custom_id %q is used by an earlier line.", in.CustomID)
			continue
		case in.Method != "POST":
			bad(line, "invalid_method", "method", "method must be POST, got %q.", in.Method)
			continue
		case in.URL != endpoint:
			bad(line, "mismatched_url", "url", "url %q does not match the batch endpoint %q.", in.URL, endpoint)
			continue
		case len(bytes.TrimSpace(in.Body)) == 0 || bytes.TrimSpace(in.Body)[0] != '{':
			bad(line, "invalid_body", "body", "body must be a JSON object.")
			continue
		}
		seen[in.CustomID] = true
		br := BatchRequest{CustomID: in.CustomID}
		req, e := DecodeRequest(in.Body)
		if e == nil {
			e = req.Validate(opt)
		}
		if e == nil && req.Stream {
			e = Invalid("stream", CodeUnsupported, "stream is not supported in batches.")
		}
		br.Request, br.Err = req, e
		reqs = append(reqs, br)
	}
	if err := sc.Err(); err != nil {
		bad(line+1, "invalid_file", "", "The file could not be read as JSONL: %v.", err)
	}
	if len(reqs) == 0 && len(errs) == 0 {
		bad(0, "empty_file", "input_file_id", "The input file holds no requests.")
	}
	return reqs, errs
}

// outputLines renders the results as the output file (successes) and the error file (failures).
func outputLines(results []BatchResult) (out, errOut []byte) {
	var ob, eb bytes.Buffer
	for _, r := range results {
		line := BatchOutputLine{ID: newID("batch_req_"), CustomID: r.CustomID}
		if r.Err != nil {
			body, _ := json.Marshal(errorBody{Error: r.Err})
			line.Response = &BatchResponse{StatusCode: r.Err.Status, RequestID: newID("req_"), Body: body}
			b, _ := json.Marshal(line)
			eb.Write(b)
			eb.WriteByte('\n')
			continue
		}
		body, _ := json.Marshal(r.Completion)
		line.Response = &BatchResponse{StatusCode: 200, RequestID: newID("req_"), Body: body}
		b, _ := json.Marshal(line)
		ob.Write(b)
		ob.WriteByte('\n')
	}
	return ob.Bytes(), eb.Bytes()
}
