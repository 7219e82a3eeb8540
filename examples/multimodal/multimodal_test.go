package multimodal_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	oa "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/lumenflow/lumen/internal/lumentest"
	"github.com/lumenflow/lumen/model"
	"github.com/lumenflow/lumen/model/jsonschema"
)

// The example end to end: Lumen trains the tiny model as a workflow (train.json: one step of the
// built-in lumen:model.train, text, image and audio tasks, 200 seeded steps on one core: the
// same weights every run) on a `lumen up --data-root`; `lumen up --model` then serves it, and
// the official OpenAI Go client asks it a text, an image and an audio question, makes it call a
// tool, asks for strict JSON, and runs a batch.
func TestMultimodal_TrainServeAndAsk(t *testing.T) {
	root := t.TempDir()
	start := time.Now()
	trainer := lumentest.StartWith(t, "", "--data-root", root)
	doc, err := os.ReadFile("train.json")
	if err != nil {
		t.Fatal(err)
	}
	tc := trainer.Client()
	wf, err := tc.SubmitWorkflow(context.Background(), doc, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	out, done, err := tc.WorkflowResult(context.Background(), wf.ID, 10*time.Minute)
	if err != nil || !done {
		t.Fatalf("training workflow: %s %v %v\n%s", out, done, err, trainer.Output())
	}
	trainer.Kill()
	t.Logf("trained as workflow %s in %v: %s", wf.ID, time.Since(start).Round(time.Millisecond), out)
	dir := filepath.Join(root, "models", "tiny")

	node := lumentest.StartWith(t, "", "--model", dir)
	client := oa.NewClient(option.WithBaseURL(node.URL+"/v1/"), option.WithAPIKey(node.Token), option.WithMaxRetries(0))
	ctx := context.Background()
	ask := func(parts ...oa.ChatCompletionContentPartUnionParam) oa.ChatCompletionNewParams {
		return oa.ChatCompletionNewParams{
			Model:       "lumen-mm",
			Messages:    []oa.ChatCompletionMessageParamUnion{oa.UserMessage(parts)},
			Temperature: oa.Float(0),
			MaxTokens:   oa.Int(16),
		}
	}
	answer := func(name string, p oa.ChatCompletionNewParams, want string) {
		t.Helper()
		c, err := client.Chat.Completions.New(ctx, p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := c.Choices[0].Message.Content; got != want || c.Choices[0].FinishReason != "stop" {
			t.Errorf("%s: answered %q (%s), want %q", name, got, c.Choices[0].FinishReason, want)
		}
	}
	text := func(s string) oa.ChatCompletionContentPartUnionParam { return oa.TextContentPart(s) }

	// Text.
	answer("text: successor", ask(text("What comes after 4?")), "5")
	answer("text: parity", ask(text("Is 37 even or odd?")), "odd")

	// An image: a PNG data URL.
	for _, colour := range []string{"red", "blue"} {
		var buf bytes.Buffer
		if err := png.Encode(&buf, model.DrawShape("circle", model.Colours[colour], 14, 16, 8)); err != nil {
			t.Fatal(err)
		}
		url := "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())
		answer("image: "+colour, ask(oa.ImageContentPart(oa.ChatCompletionContentPartImageImageURLParam{URL: url}), text("What colour is the shape?")), colour)
	}

	// Audio: a WAV data URL of beeps.
	for _, tc := range []struct {
		n     int
		freq  float64
		q     string
		reply string
	}{{2, 2200, "How many beeps?", "2"}, {3, 300, "Is the tone high or low?", "low"}, {1, 2400, "Describe the sound.", "1 high beeps"}} {
		wav := base64.StdEncoding.EncodeToString(model.EncodeWAV(model.Beeps(tc.n, tc.freq)))
		audio := oa.InputAudioContentPart(oa.ChatCompletionContentPartInputAudioInputAudioParam{Data: wav, Format: "wav"})
		answer(fmt.Sprintf("audio: %d beeps at %.0f Hz: %s", tc.n, tc.freq, tc.q), ask(audio, text(tc.q)), tc.reply)
	}

	// A tool call: the arguments are decoded under the tool's schema, so they always validate.
	weather := oa.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
		Name: "get_weather", Description: oa.String("current weather in a city"), Strict: oa.Bool(true),
		Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}, "required": []string{"city"}, "additionalProperties": false},
	})
	p := ask(text("What is the weather in Paris?"))
	p.Tools = []oa.ChatCompletionToolUnionParam{weather}
	p.ToolChoice = oa.ToolChoiceOptionFunctionToolChoice(oa.ChatCompletionNamedToolChoiceFunctionParam{Name: "get_weather"})
	p.MaxTokens = oa.Int(40)
	c, err := client.Chat.Completions.New(ctx, p)
	if err != nil {
		t.Fatalf("tool call: %v", err)
	}
	// The tiny model is not trained on tool calls: it may spend its 40 tokens inside the city
	// (finish_reason "length"), and the decoder still closes the arguments so that they validate.
	calls := c.Choices[0].Message.ToolCalls
	if fr := c.Choices[0].FinishReason; len(calls) == 0 || calls[0].Function.Name != "get_weather" || (fr != "tool_calls" && fr != "length") {
		t.Fatalf("tool call: finish %q, message %s", fr, c.Choices[0].Message.RawJSON())
	}
	mustValidate(t, "tool call arguments", string(model.WeatherTool.Parameters), calls[0].Function.Arguments)

	// Strict JSON: the answer always parses and validates against the schema.
	schema := map[string]any{"type": "object", "properties": map[string]any{
		"colour": map[string]any{"type": "string", "enum": []string{"red", "green", "blue", "yellow"}},
		"count":  map[string]any{"type": "integer"},
		"tags":   map[string]any{"type": "array", "items": map[string]any{"type": "string"}, "maxItems": 2},
	}, "required": []string{"colour", "count", "tags"}, "additionalProperties": false}
	p = ask(text("Describe the image as JSON."))
	p.MaxTokens = oa.Int(60)
	p.ResponseFormat = oa.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
		JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "scene", Schema: schema, Strict: oa.Bool(true)}}}
	if c, err = client.Chat.Completions.New(ctx, p); err != nil {
		t.Fatalf("json_schema: %v", err)
	}
	sb, _ := json.Marshal(schema)
	mustValidate(t, "strict JSON answer", string(sb), c.Choices[0].Message.Content)

	// A batch: a JSONL file of requests, run as a durable Lumen batch; each line's answer is the
	// one the same request gets alone.
	qs := map[string]string{"r1": "What comes after 2?", "r2": "Is 10 even or odd?", "r3": "What comes after 7?"}
	want := map[string]string{"r1": "3", "r2": "even", "r3": "8"}
	var input strings.Builder
	for _, id := range []string{"r1", "r2", "r3"} {
		body, _ := json.Marshal(ask(text(qs[id])))
		fmt.Fprintf(&input, `{"custom_id":%q,"method":"POST","url":"/v1/chat/completions","body":%s}`+"\n", id, body)
	}
	f, err := client.Files.New(ctx, oa.FileNewParams{File: oa.File(strings.NewReader(input.String()), "questions.jsonl", "application/jsonl"), Purpose: oa.FilePurposeBatch})
	if err != nil {
		t.Fatal(err)
	}
	b, err := client.Batches.New(ctx, oa.BatchNewParams{InputFileID: f.ID, Endpoint: oa.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: oa.BatchNewParamsCompletionWindow24h})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); b.Status != "completed"; {
		if b.Status == "failed" || time.Now().After(deadline) {
			t.Fatalf("batch %s: %+v", b.Status, b)
		}
		time.Sleep(50 * time.Millisecond)
		if b, err = client.Batches.Get(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := client.Files.Content(ctx, b.OutputFileID)
	if err != nil {
		t.Fatal(err)
	}
	outLines, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	got := 0
	for _, l := range strings.Split(strings.TrimSpace(string(outLines)), "\n") {
		var line struct {
			CustomID string `json:"custom_id"`
			Response struct {
				Body oa.ChatCompletion `json:"body"`
			}
		}
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("batch output line %q: %v", l, err)
		}
		if a := line.Response.Body.Choices[0].Message.Content; a != want[line.CustomID] {
			t.Errorf("batch %s (%s): %q, want %q", line.CustomID, qs[line.CustomID], a, want[line.CustomID])
		}
		got++
	}
	if got != 3 || b.RequestCounts.Completed != 3 {
		t.Errorf("batch: %d output lines, counts %+v", got, b.RequestCounts)
	}
}

func mustValidate(t *testing.T, what, schema, doc string) {
	t.Helper()
	s, err := jsonschema.Compile([]byte(schema))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate([]byte(doc)); err != nil {
		t.Errorf("%s %s: %v", what, doc, err)
	}
	t.Logf("%s: %s", what, doc)
}
