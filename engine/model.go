package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/model"
	"github.com/lumenflow/lumen/model/openai"
	"github.com/lumenflow/lumen/raftstore"
	"github.com/lumenflow/lumen/sdk/abi"
)

// ModelConfig says which chat models the node serves through the OpenAI-compatible API and the
// model_chat host function. The zero value serves none.
type ModelConfig struct {
	// Dir is a model directory written by model.Model.Save (model.safetensors, config.json,
	// tokenizer.json): the node serves it as a model.Local. Empty: no local model.
	Dir string
	// ID is the name the local model is served under (default "lumen-mm").
	ID string
	// ContextLength is the local model's prompt-plus-completion limit in positions (default the
	// model's max_seq; at most model.MaxContextLength).
	ContextLength int
	// MaxTokens is the local model's completion length when a request sets none (default 256).
	MaxTokens int
	// Provider is an external OpenAI-compatible endpoint served beside the local model.
	Provider ProviderConfig
	// SafetyFile is an openai.LoadFilter JSON file; empty means the default categories.
	SafetyFile string
	// NoSafety turns the safety filter off (tests of a raw backend only).
	NoSafety bool
	// BatchConcurrency is how many lines of a batch run at once (default 4).
	BatchConcurrency int
	// Validate sets the deployment's request limits.
	Validate openai.ValidateOptions
	// JobModels limits what model_chat may reach: a job named here may use only the models
	// listed for it (a "*" entry is every other job's list). A job in neither may use every
	// model. The REST routes are not affected: their token is the permission.
	JobModels map[string][]string
}

// ProviderConfig names an external OpenAI-compatible provider.
type ProviderConfig struct {
	// BaseURL is the provider's API root including /v1. Empty: no provider.
	BaseURL string
	// KeyFile holds the API key (surrounding white space is trimmed). Empty: no key is sent.
	KeyFile string
	// Models maps the names served here to the provider's (default {"gpt-4o": "gpt-4o"}).
	Models map[string]string
}

// enabled reports whether any model is configured.
func (c ModelConfig) enabled() bool { return c.Dir != "" || c.Provider.BaseURL != "" }

// ParseModelMap reads "served=provider,served2=provider2" (or "name" for the same name on both
// sides), the command line's spelling of ProviderConfig.Models.
func ParseModelMap(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		served, provider, ok := strings.Cut(part, "=")
		if !ok {
			provider = served
		}
		served, provider = strings.TrimSpace(served), strings.TrimSpace(provider)
		if served == "" || provider == "" {
			return nil, fmt.Errorf("model map: %q: want served=provider", part)
		}
		if _, dup := out[served]; dup {
			return nil, fmt.Errorf("model map: %q is named twice", served)
		}
		out[served] = provider
	}
	if len(out) == 0 {
		return nil, errors.New("model map: no model named")
	}
	return out, nil
}

// models is what the engine serves: the backends routed by model name, the filter, and the
// durable batch runner. It is immutable after openModels.
type models struct {
	backend  openai.Backend // the router, unfiltered
	filtered openai.Backend // the router behind the filter: what guests and batches use
	filter   *openai.Filter // nil when NoSafety
	runner   *batchRunner
	validate openai.ValidateOptions
}

// openModels loads the configured backends. It runs in Open after the state is ready.
func (e *Engine) openModels() error {
	cfg := e.cfg.Model
	if !cfg.enabled() {
		return nil
	}
	var backends []openai.Backend
	if cfg.Dir != "" {
		m, err := model.Load(cfg.Dir)
		if err != nil {
			return fmt.Errorf("engine: model dir %s: %w", cfg.Dir, err)
		}
		m.Freeze()
		local, err := model.NewLocal(m, model.LocalConfig{ModelID: cfg.ID, ContextLength: cfg.ContextLength, MaxTokens: cfg.MaxTokens})
		if err != nil {
			return fmt.Errorf("engine: model dir %s: %w", cfg.Dir, err)
		}
		backends = append(backends, local)
	}
	if p := cfg.Provider; p.BaseURL != "" {
		key := ""
		if p.KeyFile != "" {
			b, err := os.ReadFile(p.KeyFile)
			if err != nil {
				return fmt.Errorf("engine: provider key file: %w", err)
			}
			key = strings.TrimSpace(string(b))
			if key == "" {
				return fmt.Errorf("engine: provider key file %s is empty", p.KeyFile)
			}
		}
		names := p.Models
		if len(names) == 0 {
			names = map[string]string{"gpt-4o": "gpt-4o"}
		}
		remote, err := openai.NewRemote(openai.RemoteConfig{BaseURL: p.BaseURL, APIKey: key, Models: names})
		if err != nil {
			return fmt.Errorf("engine: provider: %w", err)
		}
		backends = append(backends, remote)
	}
	router, err := newRouter(backends)
	if err != nil {
		return err
	}
	ms := &models{backend: router, filtered: router, validate: cfg.Validate}
	if !cfg.NoSafety {
		var f *openai.Filter
		if cfg.SafetyFile != "" {
			f, err = openai.LoadFilter(cfg.SafetyFile)
		} else {
			f, err = openai.NewFilter(openai.FilterConfig{})
		}
		if err != nil {
			return fmt.Errorf("engine: safety filter: %w", err)
		}
		ms.filter, ms.filtered = f, openai.WithFilter(router, f)
	}
	ms.runner = &batchRunner{e: e, backend: ms.filtered, concurrency: cfg.BatchConcurrency}
	e.models = ms
	return nil
}

// ModelServing is what the API layer needs to mount the OpenAI-compatible routes.
type ModelServing struct {
	// Backend serves every configured model, routed by name, without the filter (the handler
	// applies Filter itself).
	Backend openai.Backend
	// Filter is the deployment's safety filter; nil when turned off.
	Filter *openai.Filter
	// BatchRunner runs batches durably through the engine's replicated state.
	BatchRunner openai.BatchRunner
	// BatchConcurrency is the configured concurrency of batches.
	BatchConcurrency int
	// Validate is the deployment's request limits.
	Validate openai.ValidateOptions
}

// Models returns what the node serves, or ok false when no model is configured.
func (e *Engine) Models() (ModelServing, bool) {
	if e.models == nil {
		return ModelServing{}, false
	}
	return ModelServing{
		Backend: e.models.backend, Filter: e.models.filter, BatchRunner: e.models.runner,
		BatchConcurrency: e.cfg.Model.BatchConcurrency, Validate: e.models.validate,
	}, true
}

// Done is closed when the engine starts closing: the API closes what it serves over the engine
// (the OpenAI handler and its batches) no later than that.
func (e *Engine) Done() <-chan struct{} { return e.ctx.Done() }

// Chat runs one chat-completions request (JSON in, JSON out, as openai.Call) on the filtered
// models: the body of the model_chat host function. It returns the HTTP status the API would
// give and the completion or the OpenAI-shaped error. ok is false when no model is configured.
func (e *Engine) Chat(ctx context.Context, body []byte) (status int, out []byte, ok bool) {
	if e.models == nil {
		return 0, nil, false
	}
	status, out = openai.Call(ctx, e.models.filtered, body, e.models.validate)
	return status, out, true
}

// router serves several backends as one, each request going to the backend that lists its
// model. Names are unique across backends.
type router struct {
	by   map[string]openai.Backend
	list []openai.Model
}

func newRouter(bs []openai.Backend) (*router, error) {
	r := &router{by: map[string]openai.Backend{}}
	for _, b := range bs {
		for _, m := range b.Models() {
			if _, dup := r.by[m.ID]; dup {
				return nil, fmt.Errorf("engine: model %q is served by both the local model and the provider; rename one", m.ID)
			}
			r.by[m.ID] = b
			r.list = append(r.list, m)
		}
	}
	sort.Slice(r.list, func(i, j int) bool { return r.list[i].ID < r.list[j].ID })
	return r, nil
}

// Models lists every backend's models, by name.
func (r *router) Models() []openai.Model { return append([]openai.Model(nil), r.list...) }

// ChatCompletion sends req to the backend serving req.Model.
func (r *router) ChatCompletion(ctx context.Context, req *openai.ChatCompletionRequest, emit func(*openai.ChatCompletionChunk) error) (*openai.ChatCompletion, error) {
	b, ok := r.by[req.Model]
	if !ok {
		e := openai.NotFound("The model '%s' does not exist or you do not have access to it.", req.Model)
		p, c := "model", "model_not_found"
		e.Param, e.Code = &p, &c
		return nil, e
	}
	return b.ChatCompletion(ctx, req, emit)
}

// Batches in the replicated state. A batch's line i, once finished, is one key
//
//	oai/batch/<batch id>/<i, 8 digits> → {"custom_id", "completion" | "error"}
//
// written through raft before the line counts as done. RunBatch first reads the lines already
// there (a batch run again after a restart or a failover) and runs only the others, so no
// finished line is run twice. When the batch's results are all returned the keys are deleted in
// one command; if the node stops between that and the handler writing its output file, the
// handler runs the batch again from the start (it is then redone, never lost).
const batchPrefix = "oai/batch/"

func batchLineKey(id string, i int) string { return fmt.Sprintf("%s%s/%08d", batchPrefix, id, i) }

// lineRecord is one finished line as stored.
type lineRecord struct {
	CustomID   string                 `json:"custom_id"`
	Completion *openai.ChatCompletion `json:"completion,omitempty"`
	Err        *openai.Error          `json:"error,omitempty"`
}

// batchRunner is the engine's openai.BatchRunner: each finished line is checkpointed in the
// replicated state, like a workflow step. It is safe for concurrent use.
type batchRunner struct {
	e           *Engine
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
	err := br.e.state.scan(prefix, func(key string, val []byte) error {
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
				err = br.e.state.put(batchLineKey(id, i), rec)
			}
			if err != nil && br.e.ctx.Err() != nil {
				// The engine is closing: hold the line back until the caller's context ends
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
	c := &raftstore.Command{}
	prefix := batchPrefix + id + "/"
	_ = br.e.state.scan(prefix, func(key string, _ []byte) error {
		c.Ops = append(c.Ops, raftstore.Op{Kind: raftstore.OpDelete, Key: []byte(key)})
		return nil
	})
	if len(c.Ops) == 0 {
		return
	}
	if err := br.e.node.Apply(br.e.ctx, c); err != nil {
		br.e.logf("batch %s: delete checkpoints: %v", id, err)
	}
}

// modelsImpl is the engine behind the model_chat host function: the call's job may use every
// model the node serves (the grant of the model capability is the permission).
type modelsImpl struct{ e *Engine }

// Chat implements host.Models.
func (m modelsImpl) Chat(ctx context.Context, c *host.CallInfo, req []byte) (int, []byte, error) {
	if allowed, limited := m.e.jobModels(c.Job); limited {
		var r struct {
			Model string `json:"model"`
		}
		_ = json.Unmarshal(req, &r) // a request that does not decode is refused by Chat, naming the field
		if r.Model != "" && !allowed[r.Model] {
			e := openai.Invalid("model", "model_not_allowed", "The job %q may not use the model '%s'.", c.Job, r.Model)
			e.Status = http.StatusForbidden
			b, _ := json.Marshal(map[string]any{"error": e})
			return e.Status, b, nil
		}
	}
	status, out, ok := m.e.Chat(ctx, req)
	if !ok {
		return 0, nil, &host.StatusError{Status: abi.ErrUnavailable, Message: "no model is served on this node (lumen up --model DIR or --openai-base-url URL)"}
	}
	return status, out, nil
}

// jobModels returns the models job may use through model_chat, and whether it is limited.
func (e *Engine) jobModels(job string) (map[string]bool, bool) {
	jm := e.cfg.Model.JobModels
	list, ok := jm[job]
	if !ok {
		list, ok = jm["*"]
	}
	if !ok {
		return nil, false
	}
	allowed := make(map[string]bool, len(list))
	for _, m := range list {
		allowed[m] = true
	}
	return allowed, true
}
