package openai

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	oa "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

func newServer(t *testing.T, b Backend, mut func(*HandlerConfig)) (*httptest.Server, *Handler, oa.Client) {
	t.Helper()
	cfg := HandlerConfig{Backend: b, Dir: t.TempDir()}
	if mut != nil {
		mut(&cfg)
	}
	h, err := NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); h.Close() })
	client := oa.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey("test"), option.WithMaxRetries(0))
	return srv, h, client
}

var weatherTool = oa.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
	Name: "get_weather",
	Parameters: shared.FunctionParameters{
		"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}},
		"required": []string{"city"}, "additionalProperties": false,
	},
})

var answerSchema = map[string]any{
	"type": "object",
	"properties": map[string]any{
		"answer": map[string]any{"type": "integer"},
		"unit":   map[string]any{"type": "string", "enum": []string{"m", "km"}},
	},
	"required": []string{"answer", "unit"}, "additionalProperties": false,
}

func testRequests() map[string]oa.ChatCompletionNewParams {
	return map[string]oa.ChatCompletionNewParams{
		"text": {Model: "lumen-test", Messages: []oa.ChatCompletionMessageParamUnion{
			oa.SystemMessage("be brief"), oa.UserMessage("hello there world")}},
		"n2_maxtokens": {Model: "lumen-test", N: oa.Int(2), MaxCompletionTokens: oa.Int(3), Seed: oa.Int(7),
			Messages: []oa.ChatCompletionMessageParamUnion{oa.UserMessage("one two three four five")}},
		"parallel_tools": {Model: "lumen-test", Tools: []oa.ChatCompletionToolUnionParam{weatherTool},
			Messages: []oa.ChatCompletionMessageParamUnion{oa.UserMessage("weather in two cities please")}},
		"json_schema": {Model: "lumen-test", Messages: []oa.ChatCompletionMessageParamUnion{oa.UserMessage("how far?")},
			ResponseFormat: oa.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
				JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "distance", Strict: oa.Bool(true), Schema: answerSchema}}}},
		"json_object": {Model: "lumen-test", Messages: []oa.ChatCompletionMessageParamUnion{oa.UserMessage("json please")},
			ResponseFormat: oa.ChatCompletionNewParamsResponseFormatUnion{OfJSONObject: &shared.ResponseFormatJSONObjectParam{}}},
	}
}

func TestHandler_ChatWithOpenAIClient(t *testing.T) {
	_, _, client := newServer(t, &scripted{}, nil)
	ctx := context.Background()
	reqs := testRequests()

	c, err := client.Chat.Completions.New(ctx, reqs["text"])
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Choices[0].Message.Content; got != "echo 0 hello there world" || c.Choices[0].FinishReason != "stop" {
		t.Fatalf("text: %q %q", got, c.Choices[0].FinishReason)
	}
	if c.Usage.PromptTokens != 5 || c.Usage.TotalTokens != c.Usage.PromptTokens+c.Usage.CompletionTokens {
		t.Fatalf("usage %+v", c.Usage)
	}

	c, err = client.Chat.Completions.New(ctx, reqs["n2_maxtokens"])
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Choices) != 2 || c.Choices[1].Message.Content != "echo 1 one" || c.Choices[1].FinishReason != "length" {
		t.Fatalf("n=2: %+v", c.Choices)
	}

	c, err = client.Chat.Completions.New(ctx, reqs["parallel_tools"])
	if err != nil {
		t.Fatal(err)
	}
	calls := c.Choices[0].Message.ToolCalls
	if len(calls) != 2 || c.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("tool calls: %+v", c.Choices[0])
	}
	for _, call := range calls {
		var args struct{ City string }
		if err := json.Unmarshal([]byte(call.Function.Arguments), &args); err != nil || args.City == "" {
			t.Fatalf("tool call arguments %q: %v", call.Function.Arguments, err)
		}
	}

	c, err = client.Chat.Completions.New(ctx, reqs["json_schema"])
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Answer *int
		Unit   string
	}
	if err := json.Unmarshal([]byte(c.Choices[0].Message.Content), &got); err != nil || got.Answer == nil || got.Unit == "" {
		t.Fatalf("json_schema answer %q: %v", c.Choices[0].Message.Content, err)
	}

	models, err := client.Models.List(ctx)
	if err != nil || len(models.Data) != 1 || models.Data[0].ID != "lumen-test" {
		t.Fatalf("models: %+v %v", models, err)
	}
	m, err := client.Models.Get(ctx, "lumen-test")
	if err != nil || m.ID != "lumen-test" {
		t.Fatalf("model: %+v %v", m, err)
	}
}

// comparable strips what legitimately differs between two runs of one request.
func comparable(t *testing.T, c *oa.ChatCompletion) string {
	t.Helper()
	type call struct{ ID, Name, Args string }
	type choice struct {
		Index   int64
		Content string
		Refusal string
		Finish  string
		Calls   []call
	}
	var out []choice
	for _, ch := range c.Choices {
		x := choice{Index: ch.Index, Content: ch.Message.Content, Refusal: ch.Message.Refusal, Finish: string(ch.FinishReason)}
		for _, tc := range ch.Message.ToolCalls {
			x.Calls = append(x.Calls, call{tc.ID, tc.Function.Name, tc.Function.Arguments})
		}
		out = append(out, x)
	}
	b, _ := json.Marshal(struct {
		Model   string
		Choices []choice
		Usage   [3]int64
	}{c.Model, out, [3]int64{c.Usage.PromptTokens, c.Usage.CompletionTokens, c.Usage.TotalTokens}})
	return string(b)
}

func TestHandler_StreamReassembledEqualsNonStreamed(t *testing.T) {
	_, _, client := newServer(t, &scripted{}, nil)
	ctx := context.Background()
	for name, req := range testRequests() {
		t.Run(name, func(t *testing.T) {
			direct, err := client.Chat.Completions.New(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			req.StreamOptions = oa.ChatCompletionStreamOptionsParam{IncludeUsage: oa.Bool(true)}
			stream := client.Chat.Completions.NewStreaming(ctx, req)
			var acc oa.ChatCompletionAccumulator
			chunks := 0
			for stream.Next() {
				acc.AddChunk(stream.Current())
				chunks++
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if chunks < 3 {
				t.Fatalf("only %d chunks", chunks)
			}
			if a, b := comparable(t, &acc.ChatCompletion), comparable(t, direct); a != b {
				t.Fatalf("streamed %s\n  direct %s", a, b)
			}
		})
	}
}

func TestHandler_StreamEndsWithDone(t *testing.T) {
	srv, _, _ := newServer(t, &scripted{}, nil)
	resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"lumen-test","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	if !strings.HasSuffix(string(body), "data: [DONE]\n\n") || !strings.HasPrefix(string(body), "data: {") {
		t.Fatalf("stream body:\n%s", body)
	}
	var acc Accumulator
	for _, line := range strings.Split(string(body), "\n\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var c ChatCompletionChunk
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("chunk %q: %v", data, err)
		}
		if c.Object != "chat.completion.chunk" || c.ID == "" {
			t.Fatalf("chunk fields: %+v", c)
		}
		acc.Add(&c)
	}
	if got := *acc.Completion().Choices[0].Message.Content; got != "echo 0 hi" {
		t.Fatalf("reassembled %q", got)
	}
}

func pngDataURL(t *testing.T) string {
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 4, 4))); err != nil {
		t.Fatal(err)
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())
}

func wavBase64() string {
	h := []byte("RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x80\x3e\x00\x00\x00\x7d\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00")
	return base64.StdEncoding.EncodeToString(h)
}

func TestHandler_ImageAndAudioParts(t *testing.T) {
	_, _, client := newServer(t, &scripted{}, nil)
	parts := []oa.ChatCompletionContentPartUnionParam{
		oa.TextContentPart("what is this"),
		oa.ImageContentPart(oa.ChatCompletionContentPartImageImageURLParam{URL: pngDataURL(t)}),
		oa.InputAudioContentPart(oa.ChatCompletionContentPartInputAudioInputAudioParam{Data: wavBase64(), Format: "wav"}),
	}
	c, err := client.Chat.Completions.New(context.Background(), oa.ChatCompletionNewParams{Model: "lumen-test",
		Messages: []oa.ChatCompletionMessageParamUnion{oa.UserMessage(parts)}})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Choices[0].Message.Content; got != "echo 0 what is this [2 media]" {
		t.Fatalf("got %q", got)
	}
}

func TestHandler_ErrorsNameTheField(t *testing.T) {
	srv, _, client := newServer(t, &scripted{}, func(c *HandlerConfig) { c.MaxBodyBytes = 64 << 10 })
	user := `{"role":"user","content":"hi"}`
	tools := `"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]`
	gif := base64.StdEncoding.EncodeToString([]byte("GIF89a\x01\x00\x01\x00"))
	cases := []struct {
		name, body  string
		status      int
		param, code string
	}{
		{"not json", `{"model":`, 400, "", ""},
		{"no model", `{"messages":[` + user + `]}`, 400, "model", CodeMissing},
		{"unknown model", `{"model":"gpt-9","messages":[` + user + `]}`, 404, "model", "model_not_found"},
		{"no messages", `{"model":"lumen-test","messages":[]}`, 400, "messages", CodeMissing},
		{"messages not array", `{"model":"lumen-test","messages":{}}`, 400, "messages", CodeInvalidType},
		{"bad role", `{"model":"lumen-test","messages":[{"role":"wizard","content":"x"}]}`, 400, "messages[0].role", CodeInvalidValue},
		{"content number", `{"model":"lumen-test","messages":[{"role":"user","content":5}]}`, 400, "messages[0].content", CodeInvalidType},
		{"missing content", `{"model":"lumen-test","messages":[{"role":"user"}]}`, 400, "messages[0].content", CodeMissing},
		{"image in system", `{"model":"lumen-test","messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]}]}`, 400, "messages[0].content[0].type", CodeInvalidValue},
		{"http image", `{"model":"lumen-test","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}`, 400, "messages[0].content[0].image_url.url", "invalid_image_format"},
		{"bmp image", `{"model":"lumen-test","messages":[{"role":"user","content":[{"type":"text","text":"x"},{"type":"image_url","image_url":{"url":"data:image/bmp;base64,Qk0AAA=="}}]}]}`, 400, "messages[0].content[1].image_url.url", "invalid_image_format"},
		{"gif refused when not configured", `{"model":"lumen-test","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/gif;base64,` + gif + `"}}]}]}`, 200, "", ""},
		{"mp3 audio", `{"model":"lumen-test","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"SUQz","format":"mp3"}}]}]}`, 400, "messages[0].content[0].input_audio.format", "invalid_audio_format"},
		{"wav that is not", `{"model":"lumen-test","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]}]}`, 400, "messages[0].content[0].input_audio.data", "invalid_audio_format"},
		{"orphan tool message", `{"model":"lumen-test","messages":[` + user + `,{"role":"tool","tool_call_id":"x","content":"1"}]}`, 400, "messages[1].tool_call_id", CodeInvalidValue},
		{"unknown tool choice", `{"model":"lumen-test","messages":[` + user + `],` + tools + `,"tool_choice":{"type":"function","function":{"name":"nope"}}}`, 400, "tool_choice", CodeInvalidValue},
		{"required without tools", `{"model":"lumen-test","messages":[` + user + `],"tool_choice":"required"}`, 400, "tool_choice", CodeInvalidValue},
		{"bad tool schema", `{"model":"lumen-test","messages":[` + user + `],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"strin"}}}}}]}`, 400, "tools[0].function.parameters", CodeInvalidSchema},
		{"bad response schema", `{"model":"lumen-test","messages":[` + user + `],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"a":{"type":"string","pattern":"^a"}}}}}}`, 400, "response_format.json_schema.schema", CodeInvalidSchema},
		{"response schema missing", `{"model":"lumen-test","messages":[` + user + `],"response_format":{"type":"json_schema","json_schema":{"name":"x"}}}`, 400, "response_format.json_schema.schema", CodeMissing},
		{"bad response type", `{"model":"lumen-test","messages":[` + user + `],"response_format":{"type":"yaml"}}`, 400, "response_format.type", CodeInvalidValue},
		{"n zero", `{"model":"lumen-test","messages":[` + user + `],"n":0}`, 400, "n", CodeInvalidValue},
		{"n huge", `{"model":"lumen-test","messages":[` + user + `],"n":1000}`, 400, "n", CodeInvalidValue},
		{"temperature", `{"model":"lumen-test","messages":[` + user + `],"temperature":2.5}`, 400, "temperature", CodeInvalidValue},
		{"top_p", `{"model":"lumen-test","messages":[` + user + `],"top_p":-0.1}`, 400, "top_p", CodeInvalidValue},
		{"max_tokens", `{"model":"lumen-test","messages":[` + user + `],"max_tokens":0}`, 400, "max_tokens", CodeInvalidValue},
		{"stop too many", `{"model":"lumen-test","messages":[` + user + `],"stop":["a","b","c","d","e"]}`, 400, "stop", CodeInvalidValue},
		{"stream_options alone", `{"model":"lumen-test","messages":[` + user + `],"stream_options":{"include_usage":true}}`, 400, "stream_options", CodeInvalidValue},
		{"context length", `{"model":"lumen-test","messages":[{"role":"user","content":"too long"}]}`, 400, "messages", CodeContextLengthExceeded},
		{"backend failure", `{"model":"lumen-test","messages":[{"role":"user","content":"explode"}]}`, 500, "", ""},
		{"body too large", `{"model":"lumen-test","messages":[{"role":"user","content":"` + strings.Repeat("a", 70<<10) + `"}]}`, 413, "", CodeBodyTooLarge},
	}
	for _, c := range cases {
		if c.name == "gif refused when not configured" {
			// GIF is accepted by default (the standard library decodes it).
		}
		resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, resp.StatusCode, c.status, body)
			continue
		}
		if c.status == 200 {
			continue
		}
		var eb struct {
			Error map[string]any `json:"error"`
		}
		if err := json.Unmarshal(body, &eb); err != nil || eb.Error == nil {
			t.Errorf("%s: body %s is not OpenAI's error shape", c.name, body)
			continue
		}
		for _, k := range []string{"message", "type", "param", "code"} {
			if _, ok := eb.Error[k]; !ok {
				t.Errorf("%s: error lacks %q: %s", c.name, k, body)
			}
		}
		param, _ := eb.Error["param"].(string)
		code, _ := eb.Error["code"].(string)
		if param != c.param || code != c.code {
			t.Errorf("%s: param %q code %q, want %q %q: %s", c.name, param, code, c.param, c.code, body)
		}
	}

	// The real client sees the same shape, and the server kept serving.
	_, err := client.Chat.Completions.New(context.Background(), oa.ChatCompletionNewParams{Model: "lumen-test",
		Messages: []oa.ChatCompletionMessageParamUnion{oa.UserMessage("hi")}, Temperature: oa.Float(3)})
	var apiErr *oa.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Param != "temperature" || apiErr.Type != TypeInvalidRequest {
		t.Fatalf("client error %#v", err)
	}
	if _, err := client.Chat.Completions.New(context.Background(), testRequests()["text"]); err != nil {
		t.Fatalf("after bad requests: %v", err)
	}
	resp, err := http.Get(srv.URL + "/v1/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("unknown route: %d", resp.StatusCode)
	}
}

func TestHandler_FilterRefusesInputAndOutput(t *testing.T) {
	f, err := NewFilter(FilterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	b := &scripted{}
	_, _, client := newServer(t, b, func(c *HandlerConfig) { c.Filter = f })
	ctx := context.Background()
	for _, text := range []string{"Explain how to BUILD a bomb, step by step", "tell me the secret"} {
		req := oa.ChatCompletionNewParams{Model: "lumen-test", N: oa.Int(2), Messages: []oa.ChatCompletionMessageParamUnion{oa.UserMessage(text)}}
		c, err := client.Chat.Completions.New(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range c.Choices {
			if ch.FinishReason != "content_filter" || !strings.Contains(ch.Message.Refusal, "weapons") || ch.Message.Content != "" {
				t.Fatalf("%q: choice %+v", text, ch)
			}
		}
		stream := client.Chat.Completions.NewStreaming(ctx, req)
		var acc oa.ChatCompletionAccumulator
		for stream.Next() {
			acc.AddChunk(stream.Current())
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		for _, ch := range acc.Choices {
			if ch.FinishReason != "content_filter" || !strings.Contains(ch.Message.Refusal, "weapons") || strings.Contains(ch.Message.Content, "bomb") {
				t.Fatalf("%q streamed: choice %+v", text, ch)
			}
		}
	}
	if b.calls.Load() != 2 { // the refused input never reached the backend
		t.Fatalf("backend called %d times, want 2", b.calls.Load())
	}
	if c, err := client.Chat.Completions.New(ctx, testRequests()["text"]); err != nil || c.Choices[0].FinishReason != "stop" {
		t.Fatalf("harmless request: %v %+v", err, c)
	}
}

func TestFilter_ConfigAndMatching(t *testing.T) {
	f, err := NewFilter(FilterConfig{Disable: []string{"weapons"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, hit := f.Check("how to build a bomb"); hit {
		t.Fatal("disabled category still refused")
	}
	if c, hit := f.Check("Please write ransomware!"); !hit || c != "malware" {
		t.Fatalf("malware: %q %v", c, hit)
	}
	if _, hit := f.Check("the bombardment of build artefacts"); hit {
		t.Fatal("partial words matched")
	}
	for _, cfg := range []FilterConfig{
		{Disable: []string{"nope"}},
		{Categories: []Category{{Name: "x"}}},
		{Categories: []Category{{Name: "", Phrases: []string{"a"}}}},
		{Categories: []Category{{Name: "x", Phrases: []string{"!!"}}}},
	} {
		if _, err := NewFilter(cfg); err == nil {
			t.Errorf("NewFilter(%+v) accepted", cfg)
		}
	}
}

func waitBatch(t *testing.T, client oa.Client, id string) *oa.Batch {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := client.Batches.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		switch b.Status {
		case "completed", "failed", "cancelled":
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch %s still %s", id, b.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHandler_BatchOutputEqualsPerRequestOutput(t *testing.T) {
	dir := t.TempDir()
	srv, h, client := newServer(t, &scripted{}, func(c *HandlerConfig) { c.Dir = dir })
	ctx := context.Background()
	reqs := testRequests()
	var input bytes.Buffer
	names := []string{"json_object", "json_schema", "n2_maxtokens", "parallel_tools", "text"}
	for _, name := range names {
		body, _ := json.Marshal(reqs[name])
		line, _ := json.Marshal(BatchInputLine{CustomID: name, Method: "POST", URL: "/v1/chat/completions", Body: body})
		input.Write(line)
		input.WriteByte('\n')
	}
	input.WriteString(`{"custom_id":"bad","method":"POST","url":"/v1/chat/completions","body":{"model":"lumen-test","messages":[],"temperature":9}}` + "\n")

	f, err := client.Files.New(ctx, oa.FileNewParams{File: oa.File(bytes.NewReader(input.Bytes()), "in.jsonl", "application/jsonl"), Purpose: oa.FilePurposeBatch})
	if err != nil {
		t.Fatal(err)
	}
	if f.Bytes != int64(input.Len()) || f.Purpose != "batch" {
		t.Fatalf("file %+v", f)
	}
	b, err := client.Batches.New(ctx, oa.BatchNewParams{InputFileID: f.ID, Endpoint: oa.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: oa.BatchNewParamsCompletionWindow24h})
	if err != nil {
		t.Fatal(err)
	}
	b = waitBatch(t, client, b.ID)
	if b.Status != "completed" || b.RequestCounts.Total != 6 || b.RequestCounts.Completed != 5 || b.RequestCounts.Failed != 1 {
		t.Fatalf("batch %s counts %+v", b.Status, b.RequestCounts)
	}
	read := func(id string) []BatchOutputLine {
		resp, err := client.Files.Content(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out []BatchOutputLine
		dec := json.NewDecoder(resp.Body)
		for dec.More() {
			var l BatchOutputLine
			if err := dec.Decode(&l); err != nil {
				t.Fatal(err)
			}
			out = append(out, l)
		}
		return out
	}
	lines := read(b.OutputFileID)
	if len(lines) != 5 {
		t.Fatalf("%d output lines", len(lines))
	}
	for i, l := range lines {
		if l.CustomID != names[i] || l.Response.StatusCode != 200 {
			t.Fatalf("line %d: %+v", i, l)
		}
		var fromBatch oa.ChatCompletion
		if err := json.Unmarshal(l.Response.Body, &fromBatch); err != nil {
			t.Fatal(err)
		}
		direct, err := client.Chat.Completions.New(ctx, reqs[names[i]])
		if err != nil {
			t.Fatal(err)
		}
		if a, b := comparable(t, &fromBatch), comparable(t, direct); a != b {
			t.Fatalf("%s: batch %s\n direct %s", names[i], a, b)
		}
	}
	errs := read(b.ErrorFileID)
	if len(errs) != 1 || errs[0].CustomID != "bad" || errs[0].Response.StatusCode != 400 || !strings.Contains(string(errs[0].Response.Body), `"param":"messages"`) {
		t.Fatalf("error lines %+v", errs)
	}

	// A restart over the same directory keeps files and batches.
	srv.Close()
	h.Close()
	h2, err := NewHandler(HandlerConfig{Backend: &scripted{}, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	srv2 := httptest.NewServer(h2)
	defer srv2.Close()
	client2 := oa.NewClient(option.WithBaseURL(srv2.URL+"/v1/"), option.WithAPIKey("test"), option.WithMaxRetries(0))
	b2, err := client2.Batches.Get(ctx, b.ID)
	if err != nil || b2.Status != "completed" || b2.OutputFileID != b.OutputFileID {
		t.Fatalf("after restart: %+v %v", b2, err)
	}
	if _, err := client2.Files.Get(ctx, f.ID); err != nil {
		t.Fatalf("input file after restart: %v", err)
	}
}

func TestHandler_BatchResumesAfterRestart(t *testing.T) {
	dir := t.TempDir()
	blocked := &scripted{gate: make(chan struct{})}
	h, err := NewHandler(HandlerConfig{Backend: blocked, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	client := oa.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey("test"), option.WithMaxRetries(0))
	ctx := context.Background()
	line := `{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"lumen-test","messages":[{"role":"user","content":"hi"}]}}` + "\n"
	f, err := client.Files.New(ctx, oa.FileNewParams{File: oa.File(strings.NewReader(line), "in.jsonl", "application/jsonl"), Purpose: oa.FilePurposeBatch})
	if err != nil {
		t.Fatal(err)
	}
	b, err := client.Batches.New(ctx, oa.BatchNewParams{InputFileID: f.ID, Endpoint: oa.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: oa.BatchNewParamsCompletionWindow24h})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for blocked.calls.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("batch never reached the backend")
		}
		time.Sleep(5 * time.Millisecond)
	}
	srv.Close()
	h.Close() // the backend is still blocked: the batch stops unfinished

	_, _, client2 := newServer(t, &scripted{}, func(c *HandlerConfig) { c.Dir = dir })
	b = waitBatch(t, client2, b.ID)
	if b.Status != "completed" || b.RequestCounts.Completed != 1 {
		t.Fatalf("resumed batch %s %+v", b.Status, b.RequestCounts)
	}
}

func TestHandler_BatchAndFileErrors(t *testing.T) {
	srv, _, client := newServer(t, &scripted{}, func(c *HandlerConfig) { c.MaxFileBytes = 1024 })
	ctx := context.Background()
	_, err := client.Files.New(ctx, oa.FileNewParams{File: oa.File(strings.NewReader(strings.Repeat("x", 2048)), "big.jsonl", "application/jsonl"), Purpose: oa.FilePurposeBatch})
	var apiErr *oa.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 413 {
		t.Fatalf("oversized upload: %v", err)
	}
	_, err = client.Files.New(ctx, oa.FileNewParams{File: oa.File(strings.NewReader("x"), "a.txt", "text/plain"), Purpose: oa.FilePurposeUserData})
	if !errors.As(err, &apiErr) || apiErr.Param != "purpose" {
		t.Fatalf("wrong purpose: %v", err)
	}
	_, err = client.Batches.New(ctx, oa.BatchNewParams{InputFileID: "file-0123456789abcdef01234567", Endpoint: oa.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: oa.BatchNewParamsCompletionWindow24h})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Param != "input_file_id" {
		t.Fatalf("missing file: %v", err)
	}
	f, err := client.Files.New(ctx, oa.FileNewParams{File: oa.File(strings.NewReader("not json\n"), "in.jsonl", "application/jsonl"), Purpose: oa.FilePurposeBatch})
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Batches.New(ctx, oa.BatchNewParams{InputFileID: f.ID, Endpoint: oa.BatchNewParamsEndpointV1Embeddings, CompletionWindow: oa.BatchNewParamsCompletionWindow24h})
	if !errors.As(err, &apiErr) || apiErr.Param != "endpoint" {
		t.Fatalf("wrong endpoint: %v", err)
	}
	b, err := client.Batches.New(ctx, oa.BatchNewParams{InputFileID: f.ID, Endpoint: oa.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: oa.BatchNewParamsCompletionWindow24h})
	if err != nil {
		t.Fatal(err)
	}
	b = waitBatch(t, client, b.ID)
	if b.Status != "failed" || len(b.Errors.Data) != 1 || b.Errors.Data[0].Line != 1 || b.Errors.Data[0].Code != "invalid_json_line" {
		t.Fatalf("failed batch %+v", b)
	}
	for _, path := range []string{"/v1/files/file-zz", "/v1/files/..%2f..%2fetc", "/v1/batches/batch_0123", "/v1/files/file-0123/content"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
	}
}

func TestParseBatchInput_Table(t *testing.T) {
	ok := `{"model":"m","messages":[{"role":"user","content":"x"}]}`
	in := strings.Join([]string{
		`{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":` + ok + `}`,
		``,
		`{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":` + ok + `}`,
		`{"custom_id":"b","method":"GET","url":"/v1/chat/completions","body":` + ok + `}`,
		`{"custom_id":"c","method":"POST","url":"/v1/embeddings","body":` + ok + `}`,
		`{"custom_id":"d","method":"POST","url":"/v1/chat/completions","body":"x"}`,
		`{"method":"POST"}`,
		`{"custom_id":"e","method":"POST","url":"/v1/chat/completions","body":{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}}`,
	}, "\n")
	reqs, errs := ParseBatchInput([]byte(in), BatchEndpoint, ValidateOptions{})
	want := []struct {
		line int
		code string
	}{{3, "duplicate_custom_id"}, {4, "invalid_method"}, {5, "mismatched_url"}, {6, "invalid_body"}, {7, "missing_custom_id"}}
	if len(errs) != len(want) {
		t.Fatalf("errors %+v", errs)
	}
	for i, w := range want {
		if *errs[i].Line != w.line || errs[i].Code != w.code {
			t.Errorf("error %d: line %d %s, want %d %s", i, *errs[i].Line, errs[i].Code, w.line, w.code)
		}
	}
	if len(reqs) != 2 || reqs[0].Err != nil || reqs[1].Err == nil || *reqs[1].Err.Param != "stream" {
		t.Fatalf("requests %+v", reqs)
	}
	if !reflect.DeepEqual(reqs[0].Request.Messages[0].Text(), "x") {
		t.Fatal("request not decoded")
	}
}

func TestHandler_BatchCancelAndFileListing(t *testing.T) {
	blocked := &scripted{gate: make(chan struct{})}
	_, _, client := newServer(t, blocked, nil)
	ctx := context.Background()
	var input strings.Builder
	for _, id := range []string{"a", "b", "c"} {
		input.WriteString(`{"custom_id":"` + id + `","method":"POST","url":"/v1/chat/completions","body":{"model":"lumen-test","messages":[{"role":"user","content":"hi"}]}}` + "\n")
	}
	f, err := client.Files.New(ctx, oa.FileNewParams{File: oa.File(strings.NewReader(input.String()), "in.jsonl", "application/jsonl"), Purpose: oa.FilePurposeBatch})
	if err != nil {
		t.Fatal(err)
	}
	b, err := client.Batches.New(ctx, oa.BatchNewParams{InputFileID: f.ID, Endpoint: oa.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: oa.BatchNewParamsCompletionWindow24h, Metadata: map[string]string{"job": "nightly"}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for blocked.calls.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("batch never reached the backend")
		}
		time.Sleep(5 * time.Millisecond)
	}
	c, err := client.Batches.Cancel(ctx, b.ID)
	if err != nil || (c.Status != "cancelling" && c.Status != "cancelled") {
		t.Fatalf("cancel: %v %+v", err, c)
	}
	b = waitBatch(t, client, b.ID)
	if b.Status != "cancelled" || b.RequestCounts.Total != 3 || b.RequestCounts.Failed != 3 || b.Metadata["job"] != "nightly" {
		t.Fatalf("cancelled batch %s %+v %v", b.Status, b.RequestCounts, b.Metadata)
	}
	if _, err := client.Batches.Cancel(ctx, b.ID); err == nil {
		t.Fatal("cancelling a finished batch succeeded")
	}
	resp, err := client.Files.Content(ctx, b.ErrorFileID)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Count(string(body), "\n") != 3 || strings.Count(string(body), "batch_cancelled") != 3 {
		t.Fatalf("error file:\n%s", body)
	}

	page, err := client.Files.List(ctx, oa.FileListParams{})
	if err != nil || len(page.Data) != 2 { // the input and the error file
		t.Fatalf("files: %v %+v", err, page)
	}
	list, err := client.Batches.List(ctx, oa.BatchListParams{})
	if err != nil || len(list.Data) != 1 || list.Data[0].ID != b.ID {
		t.Fatalf("batches: %v %+v", err, list)
	}
	del, err := client.Files.Delete(ctx, f.ID)
	if err != nil || !del.Deleted {
		t.Fatalf("delete: %v %+v", err, del)
	}
	if _, err := client.Files.Get(ctx, f.ID); err == nil {
		t.Fatal("deleted file still there")
	}
}

func TestHandler_BackendPanicIsA500AndServingGoesOn(t *testing.T) {
	var logged strings.Builder
	var mu sync.Mutex
	srv, _, client := newServer(t, &scripted{}, func(c *HandlerConfig) {
		c.Logf = func(format string, args ...any) {
			mu.Lock()
			fmt.Fprintf(&logged, format+"\n", args...)
			mu.Unlock()
		}
	})
	for _, stream := range []string{"false", "true"} {
		resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"lumen-test","stream":`+stream+`,"messages":[{"role":"user","content":"panic now"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 500 || !strings.Contains(string(body), `"type":"server_error"`) || strings.Contains(string(body), "goroutine") {
			t.Fatalf("stream=%s: %d %s", stream, resp.StatusCode, body)
		}
	}
	// In a batch the panic is that line's error; the others run.
	ctx := context.Background()
	in := `{"custom_id":"p","method":"POST","url":"/v1/chat/completions","body":{"model":"lumen-test","messages":[{"role":"user","content":"panic"}]}}
{"custom_id":"ok","method":"POST","url":"/v1/chat/completions","body":{"model":"lumen-test","messages":[{"role":"user","content":"hi"}]}}
`
	f, err := client.Files.New(ctx, oa.FileNewParams{File: oa.File(strings.NewReader(in), "in.jsonl", "application/jsonl"), Purpose: oa.FilePurposeBatch})
	if err != nil {
		t.Fatal(err)
	}
	b, err := client.Batches.New(ctx, oa.BatchNewParams{InputFileID: f.ID, Endpoint: oa.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: oa.BatchNewParamsCompletionWindow24h})
	if err != nil {
		t.Fatal(err)
	}
	b = waitBatch(t, client, b.ID)
	if b.Status != "completed" || b.RequestCounts.Completed != 1 || b.RequestCounts.Failed != 1 {
		t.Fatalf("batch %s %+v", b.Status, b.RequestCounts)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logged.String(), "backend panic: scripted backend panicked") {
		t.Fatalf("panic not logged: %q", logged.String())
	}
}
