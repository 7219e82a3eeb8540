package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	oa "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/engine/api"
	"github.com/lumenflow/lumen/engine/serving"
	"github.com/lumenflow/lumen/model"
)

// tinyModelDir saves a tiny model with random weights: served like a trained one, with
// deterministic seeded answers.
func tinyModelDir(t *testing.T) string {
	t.Helper()
	tok, err := model.TrainBPE(model.Corpus(1, 100), 300)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(model.TinyConfig(tok.VocabSize()), tok)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "model")
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// modelServer starts an engine serving mc over the API; stop closes both, as lumen up does.
func modelServer(t *testing.T, dataDir string, mc serving.Config) (c client, srv *api.Server, stop func()) {
	t.Helper()
	ctx := context.Background()
	eng, err := engine.Open(ctx, engine.Config{DataDir: dataDir, Model: mc})
	if err != nil {
		t.Fatal(err)
	}
	srv, err = api.New(eng, api.Config{})
	if err != nil {
		eng.Close(ctx)
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	stop = func() {
		ts.Close()
		srv.Close()
		eng.Close(ctx)
	}
	return client{t: t, url: ts.URL, token: srv.AdminToken()}, srv, stop
}

func openaiClient(c client) oa.Client {
	return oa.NewClient(option.WithBaseURL(c.url+"/v1/"), option.WithAPIKey(c.token), option.WithMaxRetries(0))
}

func TestOpenAI_AuthErrorsInOpenAIShape(t *testing.T) {
	dir := t.TempDir()
	c, _, stop := modelServer(t, dir, serving.Config{Dir: tinyModelDir(t)})
	defer stop()
	read, err := os.ReadFile(filepath.Join(dir, api.ReadTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	chat := []byte(`{"model":"lumen-mm","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}`)
	for _, tc := range []struct {
		name, token, method, path string
		want                      int
		code                      string
	}{
		{"no token", "", "POST", "/v1/chat/completions", 401, "missing_api_key"},
		{"bad token", "nope", "GET", "/v1/models", 401, "invalid_api_key"},
		{"read token writes", strings.TrimSpace(string(read)), "POST", "/v1/chat/completions", 403, "insufficient_permissions"},
		{"read token uploads", strings.TrimSpace(string(read)), "POST", "/v1/files", 403, "insufficient_permissions"},
		{"read token reads", strings.TrimSpace(string(read)), "GET", "/v1/models", 200, ""},
		{"unknown model", c.token, "POST", "/v1/chat/completions", 404, "model_not_found"},
	} {
		cc := client{t: t, url: c.url, token: tc.token}
		body := chat
		if tc.name == "unknown model" {
			body = []byte(`{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}`)
		}
		code, b := cc.do(tc.method, tc.path, body)
		if code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, b, tc.want)
			continue
		}
		if tc.code == "" {
			continue
		}
		var e struct {
			Error struct {
				Message, Type string
				Code          *string
			}
		}
		if err := json.Unmarshal(b, &e); err != nil || e.Error.Message == "" || e.Error.Type == "" || e.Error.Code == nil || *e.Error.Code != tc.code {
			t.Errorf("%s: body %s is not an OpenAI error with code %s", tc.name, b, tc.code)
		}
	}
	// Lumen's own routes keep Lumen's error shape.
	code, b := client{t: t, url: c.url}.do("GET", "/v1/modules", nil)
	if code != 401 || !strings.Contains(string(b), `"kind"`) {
		t.Errorf("GET /v1/modules without token: %d %s", code, b)
	}
}

func TestOpenAI_WithoutAModelRoutesSayHowToServeOne(t *testing.T) {
	c, _, _ := setup(t)
	code, b := c.do("POST", "/v1/chat/completions", []byte(`{}`))
	if code != 404 || !strings.Contains(string(b), "--model") || !strings.Contains(string(b), `"type"`) {
		t.Errorf("%d %s", code, b)
	}
	if code, _ := c.do("GET", "/v1/modules", nil); code != 200 {
		t.Errorf("GET /v1/modules beside the OpenAI routes: %d", code)
	}
}

func TestOpenAI_ChatAndBatchThroughTheClient(t *testing.T) {
	dir := t.TempDir()
	c, _, stop := modelServer(t, dir, serving.Config{Dir: tinyModelDir(t)})
	defer stop()
	client := openaiClient(c)
	ctx := context.Background()

	models, err := client.Models.List(ctx)
	if err != nil || len(models.Data) != 1 || models.Data[0].ID != "lumen-mm" {
		t.Fatalf("models: %+v %v", models, err)
	}
	params := func(i int) oa.ChatCompletionNewParams {
		return oa.ChatCompletionNewParams{
			Model:     "lumen-mm",
			Messages:  []oa.ChatCompletionMessageParamUnion{oa.UserMessage(fmt.Sprintf("question %d", i))},
			Seed:      oa.Int(int64(i)),
			MaxTokens: oa.Int(4),
		}
	}
	direct := map[string]string{}
	var input strings.Builder
	for i := range 3 {
		cc, err := client.Chat.Completions.New(ctx, params(i))
		if err != nil {
			t.Fatal(err)
		}
		direct[fmt.Sprintf("r%d", i)] = cc.Choices[0].Message.Content
		body, _ := json.Marshal(params(i))
		fmt.Fprintf(&input, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":%s}`+"\n", i, body)
	}
	_, err = client.Chat.Completions.New(ctx, oa.ChatCompletionNewParams{
		Model:       "lumen-mm",
		Messages:    []oa.ChatCompletionMessageParamUnion{oa.UserMessage("hi")},
		Temperature: oa.Float(3),
	})
	var apiErr *oa.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Param != "temperature" {
		t.Fatalf("bad temperature: %v", err)
	}

	f, err := client.Files.New(ctx, oa.FileNewParams{File: oa.File(strings.NewReader(input.String()), "in.jsonl", "application/jsonl"), Purpose: oa.FilePurposeBatch})
	if err != nil {
		t.Fatal(err)
	}
	b, err := client.Batches.New(ctx, oa.BatchNewParams{InputFileID: f.ID, Endpoint: oa.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: oa.BatchNewParamsCompletionWindow24h})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for b.Status != "completed" {
		if b.Status == "failed" || time.Now().After(deadline) {
			t.Fatalf("batch %s: %+v", b.Status, b)
		}
		time.Sleep(20 * time.Millisecond)
		if b, err = client.Batches.Get(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := client.Files.Content(ctx, b.OutputFileID)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 3 {
		t.Fatalf("output: %s", out)
	}
	for _, l := range lines {
		var line struct {
			CustomID string `json:"custom_id"`
			Response struct {
				StatusCode int               `json:"status_code"`
				Body       oa.ChatCompletion `json:"body"`
			}
		}
		if err := json.Unmarshal([]byte(l), &line); err != nil || line.Response.StatusCode != http.StatusOK {
			t.Fatalf("output line %s: %v", l, err)
		}
		if got, want := line.Response.Body.Choices[0].Message.Content, direct[line.CustomID]; got != want {
			t.Errorf("%s: batch answered %q, the same request alone %q", line.CustomID, got, want)
		}
	}
}

// TestOpenAI_ProviderIsAnotherLumen serves the tiny model on one node and, on a second, both a
// local model and the first node as its external provider over loopback: each name goes to its
// backend, and the provider's answer is the one the first node gives.
func TestOpenAI_ProviderIsAnotherLumen(t *testing.T) {
	mdir := tinyModelDir(t)
	first, _, stop1 := modelServer(t, t.TempDir(), serving.Config{Dir: mdir})
	defer stop1()
	key := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(key, []byte(first.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	second, _, stop2 := modelServer(t, t.TempDir(), serving.Config{Dir: mdir, ID: "local-mm",
		Provider: serving.ProviderConfig{BaseURL: first.url + "/v1", KeyFile: key, Models: map[string]string{"remote-mm": "lumen-mm"}}})
	defer stop2()
	ctx := context.Background()
	c1, c2 := openaiClient(first), openaiClient(second)
	models, err := c2.Models.List(ctx)
	if err != nil || len(models.Data) != 2 || models.Data[0].ID != "local-mm" || models.Data[1].ID != "remote-mm" {
		t.Fatalf("models of the second node: %+v %v", models.Data, err)
	}
	p := oa.ChatCompletionNewParams{Messages: []oa.ChatCompletionMessageParamUnion{oa.UserMessage("hello")}, Seed: oa.Int(5), MaxTokens: oa.Int(4)}
	p.Model = "lumen-mm"
	direct, err := c1.Chat.Completions.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"remote-mm", "local-mm"} {
		p.Model = name
		got, err := c2.Chat.Completions.New(ctx, p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.Model != name || got.Choices[0].Message.Content != direct.Choices[0].Message.Content {
			t.Errorf("%s answered %q as %s; the first node %q", name, got.Choices[0].Message.Content, got.Model, direct.Choices[0].Message.Content)
		}
	}
	// A bad request for the provider's model is refused in OpenAI's shape, naming the field.
	p.Model = "remote-mm"
	p.Temperature = oa.Float(2.5)
	_, err = c2.Chat.Completions.New(ctx, p)
	var apiErr *oa.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Param != "temperature" {
		t.Errorf("bad temperature through the provider: %v", err)
	}
}
