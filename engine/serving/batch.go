package serving

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/lumenflow/lumen/model/openai"
)

// Batches in the replicated state. A batch's line i, once finished, is one key
//
//	oai/batch/<batch id>/<i, 8 digits> → {"custom_id", "completion" | "error"}
//
// written through Checkpoints before the line counts as done. RunBatch first reads the lines
// already there (a batch run again after a restart or a failover) and runs only the others, so
// no finished line is run twice. When the batch's results are all returned the keys are deleted
// in one command; if the node stops between that and the handler writing its output file, the
// handler runs the batch again from the start (it is then redone, never lost).
//
// The keys, the record and the errors' text are those the engine wrote before serving was a
// package of its own: a node upgraded in the middle of a batch reads what it had checkpointed.
const batchPrefix = "oai/batch/"

func batchLineKey(id string, i int) string { return fmt.Sprintf("%s%s/%08d", batchPrefix, id, i) }

// lineRecord is one finished line as stored.
type lineRecord struct {
	CustomID   string                 `json:"custom_id"`
	Completion *openai.ChatCompletion `json:"completion,omitempty"`
	Err        *openai.Error          `json:"error,omitempty"`
}

// batchRunner is the service's openai.BatchRunner: each finished line is checkpointed in the
// replicated state, like a workflow step. It is safe for concurrent use.
type batchRunner struct {
	cp          Checkpoints
	done        context.Context // the node's: ends when it starts closing
	logf        func(format string, args ...any)
	backend     openai.Backend
	concurrency int
}

// RunBatch runs the lines of batch id not already checkpointed, at most concurrency at a time,
// checkpointing each as it finishes, and returns every line's result in input order.
func (br *batchRunner) RunBatch(ctx context.Context, id string, reqs []openai.BatchRequest, progress func(i int, r openai.BatchResult)) ([]openai.BatchResult, error) {
	if strings.ContainsAny(id, "/\x00") || id == "" {
		return nil, fmt.Errorf("engine: batch id %q", id)
	}
	results := make([]openai.BatchResult, len(reqs))
	done := make([]bool, len(reqs))
	prefix := batchPrefix + id + "/"
	err := br.cp.Scan(prefix, func(key string, val []byte) error {
		i, err := strconv.Atoi(strings.TrimPrefix(key, prefix))
		if err != nil || i < 0 || i >= len(reqs) {
			return nil // not a line of this input: ignored, deleted with the rest
		}
		var rec lineRecord
		if err := json.Unmarshal(val, &rec); err != nil || rec.CustomID != reqs[i].CustomID {
			return nil // a different input under the same id: run the line again
		}
		results[i] = openai.BatchResult{CustomID: rec.CustomID, Completion: rec.Completion, Err: rec.Err}
		done[i] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("engine: batch %s: read checkpoints: %w", id, err)
	}
	var pmu sync.Mutex
	report := func(i int) {
		if progress != nil {
			pmu.Lock()
			progress(i, results[i])
			pmu.Unlock()
		}
	}
	for i := range reqs {
		if done[i] {
			report(i)
		}
	}
	n := br.concurrency
	if n <= 0 {
		n = 4
	}
	var (
		wg       sync.WaitGroup
		sem      = make(chan struct{}, n)
		emu      sync.Mutex
		firstErr error
	)
	for i := range reqs {
		if done[i] {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			r := openai.RunOne(ctx, br.backend, reqs[i])
			if ctx.Err() != nil && r.Err != nil {
				return // cut short: not a result, run again next time
			}
			rec, err := json.Marshal(lineRecord{CustomID: r.CustomID, Completion: r.Completion, Err: r.Err})
			if err == nil {
				err = br.cp.Put(batchLineKey(id, i), rec)
			}
			if err != nil && br.done.Err() != nil {
				// The node is closing: hold the line back until the caller's context ends
				// too, so that the batch is left to run again rather than finalized short.
				<-ctx.Done()
				return
			}
			if err != nil {
				emu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("engine: batch %s line %d: checkpoint: %w", id, i, err)
				}
				emu.Unlock()
				return
			}
			results[i], done[i] = r, true
			report(i)
		}(i)
	}
	wg.Wait()
	for i := range reqs {
		if !done[i] {
			e := firstErr
			if e == nil {
				e = ctx.Err()
			}
			if e == nil {
				e = errors.New("engine: batch line not run")
			}
			results[i] = openai.BatchResult{CustomID: reqs[i].CustomID, Err: openai.AsError(e)}
			if firstErr == nil {
				firstErr = e
			}
		}
	}
	if firstErr != nil {
		return results, firstErr
	}
	br.forget(id)
	return results, nil
}

// forget deletes batch id's checkpoints in one command.
func (br *batchRunner) forget(id string) {
	if err := br.cp.DeletePrefix(batchPrefix + id + "/"); err != nil {
		br.logf("batch %s: delete checkpoints: %v", id, err)
	}
}
