package openai

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// faulty fails the first len(script) requests to /v1/chat/completions with the scripted status
// and headers, then lets them through to h.
type faulty struct {
	h      http.Handler
	script []fault
	n      atomic.Int64
	auth   atomic.Value
}

type fault struct {
	status int
	header map[string]string
}

func (f *faulty) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.auth.Store(r.Header.Get("Authorization"))
	i := int(f.n.Add(1)) - 1
	if i < len(f.script) {
		s := f.script[i]
		for k, v := range s.header {
			w.Header().Set(k, v)
		}
		if s.status == 0 { // drop the connection: a network error
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			conn.Close()
			return
		}
		writeError(w, &Error{Status: s.status, Type: TypeServer, Message: "injected"})
		return
	}
	f.h.ServeHTTP(w, r)
}

func newRemote(t *testing.T, script []fault, mut func(*RemoteConfig)) (*Remote, *faulty) {
	t.Helper()
	h, err := NewHandler(HandlerConfig{Backend: &scripted{}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	f := &faulty{h: h, script: script}
	srv := httptest.NewServer(f)
	t.Cleanup(func() { srv.Close(); h.Close() })
	cfg := RemoteConfig{BaseURL: srv.URL + "/v1", APIKey: "sk-test", Models: map[string]string{"gpt-4o": "lumen-test"},
		BaseDelay: time.Millisecond, MaxDelay: 2 * time.Second}
	if mut != nil {
		mut(&cfg)
	}
	r, err := NewRemote(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r, f
}

func textRequest(text string) *ChatCompletionRequest {
	return &ChatCompletionRequest{Model: "gpt-4o", Messages: []Message{{Role: RoleUser, Content: TextContent(text)}}}
}

func TestRemote_AgainstOwnHandler(t *testing.T) {
	r, f := newRemote(t, nil, nil)
	ctx := context.Background()
	if ms := r.Models(); len(ms) != 1 || ms[0].ID != "gpt-4o" {
		t.Fatalf("models %+v", ms)
	}
	c, err := r.ChatCompletion(ctx, textRequest("hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if *c.Choices[0].Message.Content != "echo 0 hello" || c.Model != "gpt-4o" {
		t.Fatalf("completion %+v", c)
	}
	if f.auth.Load() != "Bearer sk-test" {
		t.Fatalf("authorization %q", f.auth.Load())
	}
	var chunks int
	var acc Accumulator
	sc, err := r.ChatCompletion(ctx, textRequest("hello"), func(ch *ChatCompletionChunk) error {
		chunks++
		acc.Add(ch)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if chunks < 3 || *sc.Choices[0].Message.Content != "echo 0 hello" || *acc.Completion().Choices[0].Message.Content != "echo 0 hello" {
		t.Fatalf("streamed %d chunks: %+v", chunks, sc.Choices[0].Message)
	}
	if sc.Usage == nil || sc.Usage.TotalTokens != c.Usage.TotalTokens {
		t.Fatalf("streamed usage %+v, direct %+v", sc.Usage, c.Usage)
	}
	// A provider error keeps its shape and is not retried.
	_, err = r.ChatCompletion(ctx, textRequest("too long"), nil)
	var e *Error
	if !errors.As(err, &e) || e.Status != 400 || e.Code == nil || *e.Code != CodeContextLengthExceeded {
		t.Fatalf("provider error %v", err)
	}
	if _, err := r.ChatCompletion(ctx, &ChatCompletionRequest{Model: "other"}, nil); err == nil {
		t.Fatal("unmapped model accepted")
	}
}

func TestRemote_RetriesTransientFailures(t *testing.T) {
	script := []fault{{status: 429}, {status: 500}, {status: 0}, {status: 503}}
	r, f := newRemote(t, script, nil)
	c, err := r.ChatCompletion(context.Background(), textRequest("hi"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if *c.Choices[0].Message.Content != "echo 0 hi" || f.n.Load() != 5 {
		t.Fatalf("after %d attempts: %+v", f.n.Load(), c)
	}
	// Streaming retries too while nothing was emitted.
	r, f = newRemote(t, []fault{{status: 502}}, nil)
	if _, err := r.ChatCompletion(context.Background(), textRequest("hi"), func(*ChatCompletionChunk) error { return nil }); err != nil || f.n.Load() != 2 {
		t.Fatalf("stream retry: %v after %d", err, f.n.Load())
	}
}

func TestRemote_GivesUpAfterMaxRetries(t *testing.T) {
	r, f := newRemote(t, []fault{{status: 500}, {status: 500}, {status: 500}}, func(c *RemoteConfig) { c.MaxRetries = 2 })
	_, err := r.ChatCompletion(context.Background(), textRequest("hi"), nil)
	var e *Error
	if !errors.As(err, &e) || e.Status != 500 || f.n.Load() != 3 {
		t.Fatalf("%v after %d attempts", err, f.n.Load())
	}
}

func TestRemote_HonoursRetryAfter(t *testing.T) {
	for _, h := range []map[string]string{{"Retry-After": "1"}, {"retry-after-ms": "300"}} {
		r, _ := newRemote(t, []fault{{status: 429, header: h}}, nil)
		start := time.Now()
		if _, err := r.ChatCompletion(context.Background(), textRequest("hi"), nil); err != nil {
			t.Fatal(err)
		}
		want := 300 * time.Millisecond
		if h["Retry-After"] != "" {
			want = time.Second
		}
		if got := time.Since(start); got < want {
			t.Fatalf("%v: retried after %v, want at least %v", h, got, want)
		}
	}
}

func TestRemote_ContextCancelsBackoff(t *testing.T) {
	r, _ := newRemote(t, []fault{{status: 429, header: map[string]string{"Retry-After": "30"}}}, func(c *RemoteConfig) { c.MaxDelay = time.Minute })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := r.ChatCompletion(ctx, textRequest("hi"), nil)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("%v after %v", err, time.Since(start))
	}
}

func TestRemote_ConfigRefused(t *testing.T) {
	for _, cfg := range []RemoteConfig{
		{BaseURL: "ftp://x", Models: map[string]string{"a": "b"}},
		{BaseURL: "http://x/v1"},
		{BaseURL: "http://x/v1", Models: map[string]string{"a": ""}},
	} {
		if _, err := NewRemote(cfg); err == nil {
			t.Errorf("NewRemote(%+v) accepted", cfg)
		}
	}
}

// The Remote backend can itself sit behind a Handler: Lumen proxying a provider.
func TestRemote_BehindHandler(t *testing.T) {
	r, _ := newRemote(t, []fault{{status: 503}}, nil)
	_, _, client := newServer(t, r, nil)
	models, err := client.Models.List(context.Background())
	if err != nil || models.Data[0].ID != "gpt-4o" {
		t.Fatalf("%+v %v", models, err)
	}
}
