package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// BatchEndpoint is the one endpoint batches may target.
const BatchEndpoint = "/v1/chat/completions"

func (h *Handler) now() *int64 {
	t := h.cfg.Now().Unix()
	return &t
}

func (h *Handler) createBatch(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, 1<<20)
	if !ok {
		return
	}
	var in BatchCreateRequest
	if err := json.Unmarshal(body, &in); err != nil {
		writeError(w, Invalid("", "", "We could not parse the JSON body of your request: %v", err))
		return
	}
	switch {
	case in.InputFileID == "":
		writeError(w, Invalid("input_file_id", CodeMissing, "Missing required parameter: 'input_file_id'."))
		return
	case in.Endpoint != BatchEndpoint:
		writeError(w, Invalid("endpoint", CodeInvalidValue, "Invalid value for 'endpoint': %q. Supported values are: '%s'.", in.Endpoint, BatchEndpoint))
		return
	case in.CompletionWindow != "24h":
		writeError(w, Invalid("completion_window", CodeInvalidValue, "Invalid value for 'completion_window': %q. Supported values are: '24h'.", in.CompletionWindow))
		return
	}
	f, err := h.store.getFile(in.InputFileID)
	if errors.Is(err, errNotFound) {
		e := NotFound("No such File object: %s", in.InputFileID)
		e.Param = strp("input_file_id")
		writeError(w, e)
		return
	} else if err != nil {
		h.serverError(w, "batch input", err)
		return
	}
	if f.Purpose != "batch" {
		writeError(w, Invalid("input_file_id", CodeInvalidValue, "File %s has purpose %q; batches need purpose 'batch'.", f.ID, f.Purpose))
		return
	}
	now := h.cfg.Now()
	exp := now.Add(24 * time.Hour).Unix()
	b := &Batch{ID: newID("batch_"), Object: "batch", Endpoint: in.Endpoint, InputFileID: in.InputFileID,
		CompletionWindow: in.CompletionWindow, Status: BatchValidating, CreatedAt: now.Unix(), ExpiresAt: &exp,
		Metadata: in.Metadata}
	if err := h.store.putBatch(b); err != nil {
		h.serverError(w, "create batch", err)
		return
	}
	h.start(b)
	writeJSON(w, http.StatusOK, h.snapshot(b.ID, b))
}

// snapshot copies a batch record under the lock.
func (h *Handler) snapshot(id string, b *Batch) *Batch {
	h.mu.Lock()
	defer h.mu.Unlock()
	if live, ok := h.live[id]; ok {
		b = live
	}
	c := *b
	return &c
}

func (h *Handler) getBatch(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	h.mu.Lock()
	live, ok := h.live[id]
	var b *Batch
	if ok {
		c := *live
		b = &c
	}
	h.mu.Unlock()
	if !ok {
		var err error
		if b, err = h.store.getBatch(id); err != nil {
			h.batchError(w, id, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, b)
}

func (h *Handler) batchError(w http.ResponseWriter, id string, err error) {
	if errors.Is(err, errNotFound) {
		writeError(w, NotFound("No such Batch object: %s", id))
		return
	}
	h.serverError(w, "batch "+id, err)
}

func (h *Handler) listBatches(w http.ResponseWriter, r *http.Request) {
	bs, err := h.store.listBatches()
	if err != nil {
		h.serverError(w, "list batches", err)
		return
	}
	for i, b := range bs {
		bs[i] = h.snapshot(b.ID, b)
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": bs, "has_more": false})
}

func (h *Handler) cancelBatch(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	h.mu.Lock()
	if live, ok := h.live[id]; ok {
		if live.Status != BatchCancelling {
			live.Status = BatchCancelling
			live.CancellingAt = h.now()
			_ = h.store.putBatch(live)
			h.running[id]()
		}
		c := *live
		h.mu.Unlock()
		writeJSON(w, http.StatusOK, &c)
		return
	}
	h.mu.Unlock()
	b, err := h.store.getBatch(id)
	if err != nil {
		h.batchError(w, id, err)
		return
	}
	writeError(w, Invalid("", CodeInvalidValue, "Cannot cancel a batch with status '%s'.", b.Status))
}

func (h *Handler) finishCancelled(b *Batch) {
	b.Status = BatchCancelled
	b.CancelledAt = h.now()
	if err := h.store.putBatch(b); err != nil {
		h.cfg.Logf("openai: batch %s: %v", b.ID, err)
	}
}

// start runs a batch in the background.
func (h *Handler) start(b *Batch) {
	ctx, cancel := context.WithCancel(h.ctx)
	h.mu.Lock()
	if h.live == nil {
		h.live = map[string]*Batch{}
	}
	h.live[b.ID] = b
	h.running[b.ID] = cancel
	h.mu.Unlock()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer cancel()
		h.run(ctx, b)
		h.mu.Lock()
		delete(h.live, b.ID)
		delete(h.running, b.ID)
		h.mu.Unlock()
	}()
}

// update changes a live batch record under the lock and persists it.
func (h *Handler) update(b *Batch, f func(*Batch)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(b)
	if err := h.store.putBatch(b); err != nil {
		h.cfg.Logf("openai: batch %s: %v", b.ID, err)
	}
}

func (h *Handler) run(ctx context.Context, b *Batch) {
	data, err := h.store.readFile(b.InputFileID, h.cfg.MaxFileBytes)
	if err != nil {
		h.update(b, func(b *Batch) {
			b.Status = BatchFailed
			b.FailedAt = h.now()
			b.Errors = &BatchErrors{Object: "list", Data: []BatchError{{Code: "invalid_file", Message: "The input file could not be read: " + err.Error()}}}
		})
		return
	}
	reqs, errs := ParseBatchInput(data, b.Endpoint, h.cfg.Validate)
	if len(errs) > 0 {
		h.update(b, func(b *Batch) {
			b.Status = BatchFailed
			b.FailedAt = h.now()
			b.Errors = &BatchErrors{Object: "list", Data: errs}
		})
		return
	}
	h.update(b, func(b *Batch) {
		b.Status = BatchInProgress
		b.InProgressAt = h.now()
		b.RequestCounts = BatchCounts{Total: len(reqs)}
	})
	done := 0
	progress := func(i int, r BatchResult) {
		done++
		persist := done%50 == 0
		h.mu.Lock()
		if r.Err != nil {
			b.RequestCounts.Failed++
		} else {
			b.RequestCounts.Completed++
		}
		if persist {
			_ = h.store.putBatch(b)
		}
		h.mu.Unlock()
	}
	results, _ := h.cfg.BatchRunner.RunBatch(ctx, b.ID, reqs, progress)
	if h.ctx.Err() != nil {
		return // shutting down: the record stays in progress and is run again on restart
	}
	cancelled := ctx.Err() != nil
	if !cancelled {
		h.update(b, func(b *Batch) {
			b.Status = BatchFinalizing
			b.FinalizingAt = h.now()
		})
	}
	if len(results) != len(reqs) {
		h.update(b, func(b *Batch) {
			b.Status = BatchFailed
			b.FailedAt = h.now()
			b.Errors = &BatchErrors{Object: "list", Data: []BatchError{{Code: "runner_failed", Message: "The batch runner returned a result count that does not match the input."}}}
		})
		return
	}
	var counts BatchCounts
	counts.Total = len(results)
	for i := range results {
		if results[i].CustomID == "" {
			results[i].CustomID = reqs[i].CustomID
		}
		if results[i].Err != nil || results[i].Completion == nil {
			if results[i].Err == nil {
				results[i].Err = errCancelled()
			}
			counts.Failed++
		} else {
			counts.Completed++
		}
	}
	out, errOut := outputLines(results)
	var outID, errID *string
	now := h.cfg.Now().Unix()
	if len(out) > 0 {
		f, err := h.store.putFile(File{Filename: b.ID + "_output.jsonl", Purpose: "batch_output", CreatedAt: now}, bytes.NewReader(out), int64(len(out)))
		if err != nil {
			h.cfg.Logf("openai: batch %s output: %v", b.ID, err)
		} else {
			outID = &f.ID
		}
	}
	if len(errOut) > 0 {
		f, err := h.store.putFile(File{Filename: b.ID + "_error.jsonl", Purpose: "batch_output", CreatedAt: now}, bytes.NewReader(errOut), int64(len(errOut)))
		if err != nil {
			h.cfg.Logf("openai: batch %s errors: %v", b.ID, err)
		} else {
			errID = &f.ID
		}
	}
	h.update(b, func(b *Batch) {
		b.OutputFileID, b.ErrorFileID = outID, errID
		b.RequestCounts = counts
		if cancelled {
			b.Status = BatchCancelled
			b.CancelledAt = h.now()
		} else {
			b.Status = BatchCompleted
			b.CompletedAt = h.now()
		}
	})
}
