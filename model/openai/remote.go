package openai

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// RemoteConfig configures a Remote backend.
type RemoteConfig struct {
	// BaseURL is the provider's API root, including /v1 (e.g. https://api.openai.com/v1).
	BaseURL string
	// APIKey is sent as a bearer token when non-empty.
	APIKey string
	// Models maps the model names this deployment offers to the provider's names
	// (e.g. {"gpt-4o": "gpt-4o-2024-08-06"}). At least one is required.
	Models map[string]string
	// HTTPClient is the client used (default: one with no overall timeout; requests follow ctx).
	HTTPClient *http.Client
	// MaxRetries is how many times a 429, a 5xx or a network error is retried (default 4;
	// negative: none).
	MaxRetries int
	// BaseDelay is the first backoff delay (default 500ms); each retry doubles it, up to
	// MaxDelay (default 20s), with jitter. A Retry-After (or retry-after-ms) header from the
	// provider replaces the computed delay, capped at MaxDelay.
	BaseDelay, MaxDelay time.Duration
}

// Remote is a Backend that forwards to an external OpenAI-compatible endpoint. It is safe for
// concurrent use.
type Remote struct {
	cfg    RemoteConfig
	base   string
	models []Model
	back   map[string]string // provider name -> local name
}

// NewRemote validates cfg.
func NewRemote(cfg RemoteConfig) (*Remote, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("openai remote: BaseURL %q must be an http(s) URL", cfg.BaseURL)
	}
	if len(cfg.Models) == 0 {
		return nil, errors.New("openai remote: Models must map at least one model name")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = 4
	}
	if cfg.BaseDelay <= 0 {
		cfg.BaseDelay = 500 * time.Millisecond
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = 20 * time.Second
	}
	r := &Remote{cfg: cfg, base: strings.TrimRight(cfg.BaseURL, "/"), back: map[string]string{}}
	for local, remote := range cfg.Models {
		if local == "" || remote == "" {
			return nil, fmt.Errorf("openai remote: Models: empty name in %q -> %q", local, remote)
		}
		r.models = append(r.models, Model{ID: local, Object: "model", OwnedBy: "remote"})
		r.back[remote] = local
	}
	sort.Slice(r.models, func(i, j int) bool { return r.models[i].ID < r.models[j].ID })
	return r, nil
}

// Models implements Backend.
func (r *Remote) Models() []Model { return append([]Model(nil), r.models...) }

// errRetry is a failed attempt worth retrying, with the provider's wait when it gave one.
type errRetry struct {
	err   error
	after time.Duration
}

func (e *errRetry) Error() string { return e.err.Error() }

// ChatCompletion implements Backend. Attempts that fail with 429, 5xx or a network error before
// any chunk was emitted are retried with exponential backoff and jitter, honouring Retry-After;
// ctx cancels the wait and the request.
func (r *Remote) ChatCompletion(ctx context.Context, req *ChatCompletionRequest, emit func(*ChatCompletionChunk) error) (*ChatCompletion, error) {
	remoteName, ok := r.cfg.Models[req.Model]
	if !ok {
		return nil, checkModel(r, req.Model)
	}
	out := *req
	out.Model = remoteName
	out.Stream = emit != nil
	if out.Stream {
		out.StreamOptions = &StreamOptions{IncludeUsage: true}
	}
	body, err := json.Marshal(&out)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		c, err := r.attempt(ctx, body, req, emit)
		var re *errRetry
		if !errors.As(err, &re) {
			return c, err
		}
		if attempt >= r.cfg.MaxRetries || r.cfg.MaxRetries < 0 {
			return nil, re.err
		}
		delay := re.after
		if delay <= 0 {
			d := r.cfg.BaseDelay << attempt
			if d > r.cfg.MaxDelay || d <= 0 {
				d = r.cfg.MaxDelay
			}
			delay = d/2 + rand.N(d/2+1) // jitter in [d/2, d]
		}
		delay = min(delay, r.cfg.MaxDelay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// retryAfter reads retry-after-ms or Retry-After (seconds or an HTTP date).
func retryAfter(h http.Header) time.Duration {
	if ms, err := strconv.ParseFloat(h.Get("retry-after-ms"), 64); err == nil && ms >= 0 {
		return time.Duration(ms * float64(time.Millisecond))
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 {
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

func (r *Remote) attempt(ctx context.Context, body []byte, req *ChatCompletionRequest, emit func(*ChatCompletionChunk) error) (*ChatCompletion, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, r.base+"/chat/completions", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	if r.cfg.APIKey != "" {
		hr.Header.Set("Authorization", "Bearer "+r.cfg.APIKey)
	}
	resp, err := r.cfg.HTTPClient.Do(hr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &errRetry{err: &Error{Status: http.StatusBadGateway, Type: TypeServer, Message: "The provider could not be reached: " + err.Error()}}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e := decodeError(resp)
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			return nil, &errRetry{err: e, after: retryAfter(resp.Header)}
		}
		return nil, e
	}
	if emit == nil {
		var c ChatCompletion
		if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&c); err != nil {
			return nil, &Error{Status: http.StatusBadGateway, Type: TypeServer, Message: "The provider's answer could not be decoded: " + err.Error()}
		}
		c.Model = r.local(c.Model, req.Model)
		return &c, nil
	}
	return r.stream(resp.Body, req, emit)
}

func (r *Remote) local(remote, requested string) string {
	if l, ok := r.back[remote]; ok {
		return l
	}
	return requested
}

// stream reads server-sent events, emitting each chunk; a failure here is not retried since
// chunks may already have reached the client.
func (r *Remote) stream(body io.Reader, req *ChatCompletionRequest, emit func(*ChatCompletionChunk) error) (*ChatCompletion, error) {
	var acc Accumulator
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		data, ok := strings.CutPrefix(line, "data:")
		if !ok {
			continue // comments, event names, blank separators
		}
		data = strings.TrimSpace(data)
		if data == "[DONE]" {
			c := acc.Completion()
			c.Model = req.Model
			return c, nil
		}
		var probe struct {
			Error *Error `json:"error"`
		}
		if json.Unmarshal([]byte(data), &probe) == nil && probe.Error != nil {
			if probe.Error.Status == 0 {
				probe.Error.Status = http.StatusBadGateway
			}
			return nil, probe.Error
		}
		var chunk ChatCompletionChunk
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			return nil, &Error{Status: http.StatusBadGateway, Type: TypeServer, Message: "The provider sent a chunk that could not be decoded: " + err.Error()}
		}
		chunk.Model = r.local(chunk.Model, req.Model)
		acc.Add(&chunk)
		if len(chunk.Choices) == 0 && chunk.Usage != nil {
			continue // the usage chunk we asked for: it goes into the completion
		}
		if err := emit(&chunk); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &Error{Status: http.StatusBadGateway, Type: TypeServer, Message: "The provider's stream broke: " + err.Error()}
	}
	return nil, &Error{Status: http.StatusBadGateway, Type: TypeServer, Message: "The provider's stream ended without [DONE]."}
}

func decodeError(resp *http.Response) *Error {
	var eb errorBody
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(data, &eb) == nil && eb.Error != nil && eb.Error.Message != "" {
		eb.Error.Status = resp.StatusCode
		return eb.Error
	}
	typ := TypeInvalidRequest
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		typ = TypeRateLimit
	case resp.StatusCode >= 500:
		typ = TypeServer
	case resp.StatusCode == http.StatusUnauthorized:
		typ = TypeAuthentication
	}
	return &Error{Status: resp.StatusCode, Type: typ, Message: fmt.Sprintf("The provider answered %s.", resp.Status)}
}
