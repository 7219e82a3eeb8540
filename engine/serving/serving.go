// Package serving owns the chat models a node serves: a model directory loaded as local weights
// and an external OpenAI-compatible provider, routed by model name behind the deployment's
// safety filter; the per-job allow-list of the model_chat host function; OpenAI batches whose
// finished lines are checkpointed in the control plane's replicated state, so that a batch run
// again after a restart or a failover does not redo them; and the built-in training step
// (lumen:model.train) that writes a model under the node's data root.
//
// The engine opens one Service per node (Open) and hands it what it needs from the rest of the
// node as plain values and small interfaces (Deps): the replicated state through Checkpoints,
// the node's context, a logger, the data root and its path check. The package imports model,
// model/openai, host, gpu, sdk/abi and the standard library; never the engine, nor raft.
package serving

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"

	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/model"
	"github.com/lumenflow/lumen/model/openai"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Config says which chat models the node serves through the OpenAI-compatible API and the
// model_chat host function. The zero value serves none.
type Config struct {
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

// Enabled reports whether any model is configured.
func (c Config) Enabled() bool { return c.Dir != "" || c.Provider.BaseURL != "" }

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

// Checkpoints is the replicated state a batch checkpoints its finished lines in; the engine
// implements it over its control plane. It must be safe for concurrent use.
type Checkpoints interface {
	// Scan calls fn for every key with prefix, in key order, with a value fn may keep.
	Scan(prefix string, fn func(key string, val []byte) error) error
	// Put writes key → val, returning once it survives a crash and a failover.
	Put(key string, val []byte) error
	// DeletePrefix deletes every key with prefix in one command.
	DeletePrefix(prefix string) error
}

// Deps is what the service needs from the rest of the node.
type Deps struct {
	// Checkpoints holds the batches' finished lines. Required when a model is configured.
	Checkpoints Checkpoints
	// Context ends when the node starts closing: a line whose checkpoint fails after that is
	// left to run again rather than reported as failed. Nil: never.
	Context context.Context
	// Logf reports what has no caller to return to (checkpoints left behind). Nil: dropped.
	Logf func(format string, args ...any)
	// DataRoot is the folder the training step writes under. Empty: the step is refused.
	DataRoot string
	// CheckPaths refuses a path that is absolute, climbs out of root or reaches outside it.
	// Required when DataRoot is set.
	CheckPaths func(root string, paths []string) error
}

// Service is one node's model serving. The models and the filter are immutable after Open; it
// is safe for concurrent use.
type Service struct {
	cfg  Config
	deps Deps
	ms   *models // nil when cfg serves none
}

// models is what the node serves: the backends routed by model name, the filter, and the
// durable batch runner.
type models struct {
	backend  openai.Backend // the router, unfiltered
	filtered openai.Backend // the router behind the filter: what guests and batches use
	filter   *openai.Filter // nil when NoSafety
	runner   *batchRunner
}

// Open loads the configured backends and the filter. A Config that serves no model gives a
// Service that serves none (Chat and Models report so) and still runs the training step. An
// error names its source: the model dir, the provider key file, the provider, the safety filter.
func Open(cfg Config, deps Deps) (*Service, error) {
	if deps.Context == nil {
		deps.Context = context.Background()
	}
	if deps.Logf == nil {
		deps.Logf = func(string, ...any) {}
	}
	if deps.DataRoot != "" && deps.CheckPaths == nil {
		return nil, errors.New("serving: a data root needs Deps.CheckPaths")
	}
	s := &Service{cfg: cfg, deps: deps}
	if !cfg.Enabled() {
		return s, nil
	}
	if deps.Checkpoints == nil {
		return nil, errors.New("serving: serving a model needs Deps.Checkpoints")
	}
	var backends []openai.Backend
	if cfg.Dir != "" {
		m, err := model.Load(cfg.Dir)
		if err != nil {
			return nil, fmt.Errorf("model dir %s: %w", cfg.Dir, err)
		}
		m.Freeze()
		local, err := model.NewLocal(m, model.LocalConfig{ModelID: cfg.ID, ContextLength: cfg.ContextLength, MaxTokens: cfg.MaxTokens})
		if err != nil {
			return nil, fmt.Errorf("model dir %s: %w", cfg.Dir, err)
		}
		backends = append(backends, local)
	}
	if p := cfg.Provider; p.BaseURL != "" {
		key := ""
		if p.KeyFile != "" {
			b, err := os.ReadFile(p.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("provider key file: %w", err)
			}
			key = strings.TrimSpace(string(b))
			if key == "" {
				return nil, fmt.Errorf("provider key file %s is empty", p.KeyFile)
			}
		}
		names := p.Models
		if len(names) == 0 {
			names = map[string]string{"gpt-4o": "gpt-4o"}
		}
		remote, err := openai.NewRemote(openai.RemoteConfig{BaseURL: p.BaseURL, APIKey: key, Models: names})
		if err != nil {
			return nil, fmt.Errorf("provider: %w", err)
		}
		backends = append(backends, remote)
	}
	router, err := newRouter(backends)
	if err != nil {
		return nil, err
	}
	ms := &models{backend: router, filtered: router}
	if !cfg.NoSafety {
		var f *openai.Filter
		if cfg.SafetyFile != "" {
			f, err = openai.LoadFilter(cfg.SafetyFile)
		} else {
			f, err = openai.NewFilter(openai.FilterConfig{})
		}
		if err != nil {
			return nil, fmt.Errorf("safety filter: %w", err)
		}
		ms.filter, ms.filtered = f, openai.WithFilter(router, f)
	}
	ms.runner = &batchRunner{cp: deps.Checkpoints, done: deps.Context, logf: deps.Logf, backend: ms.filtered, concurrency: cfg.BatchConcurrency}
	s.ms = ms
	return s, nil
}

// Models is what the API layer needs to mount the OpenAI-compatible routes.
type Models struct {
	// Backend serves every configured model, routed by name, without the filter (the handler
	// applies Filter itself).
	Backend openai.Backend
	// Filter is the deployment's safety filter; nil when turned off.
	Filter *openai.Filter
	// BatchRunner runs batches durably through the node's replicated state.
	BatchRunner openai.BatchRunner
	// BatchConcurrency is the configured concurrency of batches.
	BatchConcurrency int
	// Validate is the deployment's request limits.
	Validate openai.ValidateOptions
}

// Models returns what the node serves, or ok false when no model is configured.
func (s *Service) Models() (Models, bool) {
	if s.ms == nil {
		return Models{}, false
	}
	return Models{
		Backend: s.ms.backend, Filter: s.ms.filter, BatchRunner: s.ms.runner,
		BatchConcurrency: s.cfg.BatchConcurrency, Validate: s.cfg.Validate,
	}, true
}

// Chat runs one chat-completions request (JSON in, JSON out, as openai.Call) on the filtered
// models: the body of the model_chat host function. It returns the HTTP status the API would
// give and the completion or the OpenAI-shaped error. ok is false when no model is configured.
func (s *Service) Chat(ctx context.Context, body []byte) (status int, out []byte, ok bool) {
	if s.ms == nil {
		return 0, nil, false
	}
	status, out = openai.Call(ctx, s.ms.filtered, body, s.cfg.Validate)
	return status, out, true
}

// HostModels is the service behind the model_chat host function (host.Config.Models): a job
// may use every model the node serves (the grant of the model capability is the permission)
// unless Config.JobModels limits it.
func (s *Service) HostModels() host.Models { return modelChat{s} }

// modelChat implements host.Models over a Service.
type modelChat struct{ s *Service }

// Chat implements host.Models.
func (m modelChat) Chat(ctx context.Context, c *host.CallInfo, req []byte) (int, []byte, error) {
	if allowed, limited := m.s.jobModels(c.Job); limited {
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
	status, out, ok := m.s.Chat(ctx, req)
	if !ok {
		return 0, nil, &host.StatusError{Status: abi.ErrUnavailable, Message: "no model is served on this node (lumen up --model DIR or --openai-base-url URL)"}
	}
	return status, out, nil
}

// jobModels returns the models job may use through model_chat, and whether it is limited.
func (s *Service) jobModels(job string) (map[string]bool, bool) {
	jm := s.cfg.JobModels
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
				return nil, fmt.Errorf("model %q is served by both the local model and the provider; rename one", m.ID)
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
