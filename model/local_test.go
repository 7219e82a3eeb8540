package model

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"image/gif"
	"image/png"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	oa "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/lumenflow/lumen/model/jsonschema"
	"github.com/lumenflow/lumen/model/openai"
)

// randomLocal is an untrained model behind Local: its text is noise, which is what the
// constraints must hold against.
func randomLocal(t testing.TB, cfg LocalConfig) *Local {
	t.Helper()
	tok, err := TrainBPE(Corpus(3, 300), 340)
	if err != nil {
		t.Fatal(err)
	}
	c := TinyConfig(tok.VocabSize())
	c.Dim, c.Hidden, c.Heads, c.Layers, c.MaxSeq = 32, 64, 2, 1, 4096
	m, err := New(c, tok)
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLocal(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func chatReq(t testing.TB, js string) *openai.ChatCompletionRequest {
	t.Helper()
	r, e := openai.DecodeRequest([]byte(js))
	if e != nil {
		t.Fatal(e)
	}
	if e := r.Validate(openai.ValidateOptions{}); e != nil {
		t.Fatal(e)
	}
	return r
}

func complete(t testing.TB, l *Local, js string) *openai.ChatCompletion {
	t.Helper()
	c, err := l.ChatCompletion(context.Background(), chatReq(t, js), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// streamed runs the request with emit and rebuilds the completion from the chunks.
func streamed(t testing.TB, l *Local, js string) (*openai.ChatCompletion, *openai.ChatCompletion) {
	t.Helper()
	var acc openai.Accumulator
	c, err := l.ChatCompletion(context.Background(), chatReq(t, js), func(ch *openai.ChatCompletionChunk) error {
		acc.Add(ch)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, acc.Completion()
}

func TestLocal_TextUsageAndMaxTokens(t *testing.T) {
	l := randomLocal(t, LocalConfig{})
	c := complete(t, l, `{"model":"lumen-mm","messages":[{"role":"user","content":"hello"}],"max_tokens":5,"seed":1}`)
	if len(c.Choices) != 1 || c.Choices[0].Message.Content == nil {
		t.Fatalf("choices %+v", c.Choices)
	}
	u := c.Usage
	if u.PromptTokens < 4 || u.CompletionTokens > 5 || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
		t.Fatalf("usage %+v", u)
	}
	if f := c.Choices[0].FinishReason; f != openai.FinishLength && f != openai.FinishStop {
		t.Fatalf("finish %q", f)
	}
	if f := c.Choices[0].FinishReason; f == openai.FinishLength && u.CompletionTokens != 5 {
		t.Fatalf("length after %d tokens", u.CompletionTokens)
	}
}

func TestLocal_SeedIsDeterministicAndNGivesChoices(t *testing.T) {
	l := randomLocal(t, LocalConfig{})
	req := `{"model":"lumen-mm","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":8,"seed":42,"n":3,"temperature":1.5}`
	a, b := complete(t, l, req), complete(t, l, req)
	if len(a.Choices) != 3 {
		t.Fatalf("%d choices", len(a.Choices))
	}
	texts := map[string]bool{}
	for i := range a.Choices {
		if *a.Choices[i].Message.Content != *b.Choices[i].Message.Content {
			t.Fatalf("choice %d differs between runs with one seed", i)
		}
		texts[*a.Choices[i].Message.Content] = true
	}
	if len(texts) < 2 {
		t.Fatalf("three choices at temperature 1.5 all gave %v", texts)
	}
}

func TestLocal_StreamReassemblesToTheCompletion(t *testing.T) {
	l := randomLocal(t, LocalConfig{})
	for name, req := range map[string]string{
		"text":   `{"model":"lumen-mm","messages":[{"role":"user","content":"hi"}],"max_tokens":12,"seed":3,"n":2}`,
		"tools":  `{"model":"lumen-mm","messages":[{"role":"user","content":"weather?"}],"max_tokens":40,"seed":4,"tool_choice":"required","tools":[` + weatherToolJSON + `]}`,
		"schema": `{"model":"lumen-mm","messages":[{"role":"user","content":"json"}],"max_tokens":30,"seed":5,"response_format":{"type":"json_object"}}`,
	} {
		c, got := streamed(t, l, req)
		if !reflect.DeepEqual(comparableChoices(c), comparableChoices(got)) {
			t.Errorf("%s: streamed\n%s\nnon-streamed\n%s", name, comparableChoices(got), comparableChoices(c))
		}
		if got.ID != c.ID {
			t.Errorf("%s: chunk id %q, completion id %q", name, got.ID, c.ID)
		}
	}
}

func comparableChoices(c *openai.ChatCompletion) string {
	b, _ := json.Marshal(c.Choices)
	return string(bytes.ReplaceAll(b, []byte(`"logprobs":null`), nil))
}

const weatherToolJSON = `{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string","enum":["Paris","Oslo"]},"days":{"type":"integer"}},"required":["city","days"],"additionalProperties":false}}}`

func TestLocal_ToolCallsFollowTheirSchemas(t *testing.T) {
	l := randomLocal(t, LocalConfig{})
	other := `{"type":"function","function":{"name":"get_time","parameters":{"type":"object","$defs":{"zone":{"type":"string","enum":["UTC","CET"]}},"properties":{"zone":{"$ref":"#/$defs/zone"}},"required":["zone"],"additionalProperties":false}}}`
	schemas := map[string]*jsonschema.Schema{}
	for _, tj := range []string{weatherToolJSON, other} {
		var tool openai.Tool
		if err := json.Unmarshal([]byte(tj), &tool); err != nil {
			t.Fatal(err)
		}
		s, err := tool.ParametersSchema()
		if err != nil {
			t.Fatal(err)
		}
		schemas[tool.Function.Name] = s
	}
	for seed := 0; seed < 6; seed++ {
		for _, choice := range []string{`"required"`, `{"type":"function","function":{"name":"get_time"}}`} {
			c := complete(t, l, `{"model":"lumen-mm","messages":[{"role":"user","content":"call something"}],"max_tokens":60,"seed":`+
				string(rune('0'+seed))+`,"tool_choice":`+choice+`,"tools":[`+weatherToolJSON+`,`+other+`]}`)
			ch := c.Choices[0]
			if len(ch.Message.ToolCalls) == 0 {
				t.Fatalf("seed %d %s: no tool call: %+v", seed, choice, ch)
			}
			if ch.FinishReason != openai.FinishToolCalls && ch.FinishReason != openai.FinishLength {
				t.Fatalf("finish %q", ch.FinishReason)
			}
			for _, call := range ch.Message.ToolCalls {
				s := schemas[call.Function.Name]
				if s == nil {
					t.Fatalf("call to unknown tool %q", call.Function.Name)
				}
				if strings.HasPrefix(choice, "{") && call.Function.Name != "get_time" {
					t.Fatalf("tool_choice get_time, called %q", call.Function.Name)
				}
				if err := s.Validate([]byte(call.Function.Arguments)); err != nil {
					t.Fatalf("seed %d: arguments %s: %v", seed, call.Function.Arguments, err)
				}
				if !strings.HasPrefix(call.ID, "call_") || call.Type != "function" {
					t.Fatalf("call %+v", call)
				}
			}
		}
	}
	// tool_choice none: never a call.
	c := complete(t, l, `{"model":"lumen-mm","messages":[{"role":"user","content":"x"}],"max_tokens":10,"tool_choice":"none","tools":[`+weatherToolJSON+`]}`)
	if len(c.Choices[0].Message.ToolCalls) != 0 {
		t.Fatalf("tool_choice none made calls")
	}
}

func TestLocal_ResponseFormatAlwaysValidates(t *testing.T) {
	l := randomLocal(t, LocalConfig{})
	schemas := []string{
		`{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name","age"],"additionalProperties":false}`,
		`{"type":"object","properties":{"tags":{"type":"array","items":{"type":"string","enum":["a","b"]}},"ok":{"type":"boolean"},"x":{"type":["number","null"]}},"required":["tags","ok","x"],"additionalProperties":false}`,
		`{"type":"object","$defs":{"n":{"anyOf":[{"type":"null"},{"type":"object","properties":{"v":{"type":"integer"},"next":{"$ref":"#/$defs/n"}},"required":["v","next"],"additionalProperties":false}]}},"properties":{"list":{"$ref":"#/$defs/n"}},"required":["list"],"additionalProperties":false}`,
	}
	for i, sj := range schemas {
		s, err := jsonschema.Compile([]byte(sj))
		if err != nil {
			t.Fatal(err)
		}
		for seed := 0; seed < 4; seed++ {
			// Short budgets too: the decoder closes the document in the tokens it has left.
			for _, max := range []int{12, 80} {
				req := map[string]any{"model": "lumen-mm", "seed": seed, "max_tokens": max, "temperature": 1.2,
					"messages":        []map[string]any{{"role": "user", "content": "answer"}},
					"response_format": map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "out", "strict": true, "schema": json.RawMessage(sj)}}}
				js, _ := json.Marshal(req)
				c := complete(t, l, string(js))
				out := *c.Choices[0].Message.Content
				if err := s.Validate([]byte(out)); err != nil {
					t.Fatalf("schema %d seed %d max %d: %s: %v", i, seed, max, out, err)
				}
			}
		}
	}
	c := complete(t, l, `{"model":"lumen-mm","messages":[{"role":"user","content":"x"}],"max_tokens":40,"seed":1,"response_format":{"type":"json_object"}}`)
	var obj map[string]any
	if err := json.Unmarshal([]byte(*c.Choices[0].Message.Content), &obj); err != nil {
		t.Fatalf("json_object output %q: %v", *c.Choices[0].Message.Content, err)
	}
}

func TestLocal_StopSequenceCutsTheContent(t *testing.T) {
	l := randomLocal(t, LocalConfig{})
	base := `{"model":"lumen-mm","messages":[{"role":"user","content":"hi"}],"max_tokens":30,"temperature":0`
	full := *complete(t, l, base+`}`).Choices[0].Message.Content
	if len(full) < 6 {
		t.Fatalf("greedy output %q is too short to cut: the seeded model should answer at length", full)
	}
	stop := full[3:5]
	want := full[:strings.Index(full, stop)]
	js, _ := json.Marshal(stop)
	c := complete(t, l, base+`,"stop":[`+string(js)+`]}`)
	if got := *c.Choices[0].Message.Content; got != want || c.Choices[0].FinishReason != openai.FinishStop {
		t.Fatalf("stop %q: %q (%s), want %q", stop, got, c.Choices[0].FinishReason, want)
	}
	_, s := streamed(t, l, base+`,"stop":[`+string(js)+`]}`)
	if got := *s.Choices[0].Message.Content; got != want {
		t.Fatalf("streamed with stop: %q, want %q", got, want)
	}
}

func TestLocal_ErrorsNameTheField(t *testing.T) {
	l := randomLocal(t, LocalConfig{ContextLength: 40})
	var g bytes.Buffer
	_ = gif.Encode(&g, DrawShape("circle", Colours["red"], 16, 16, 5), nil)
	gifURL := "data:image/gif;base64," + base64.StdEncoding.EncodeToString(g.Bytes())
	for _, c := range []struct{ req, param, code string }{
		{`{"model":"lumen-mm","messages":[{"role":"user","content":"` + strings.Repeat("long words ", 40) + `"}]}`, "messages", openai.CodeContextLengthExceeded},
		{`{"model":"lumen-mm","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"` + gifURL + `"}}]}]}`, "messages[0].content[0].image_url.url", openai.CodeInvalidValue},
	} {
		_, err := l.ChatCompletion(context.Background(), chatReq(t, c.req), nil)
		var oe *openai.Error
		if !errors.As(err, &oe) || oe.Param == nil || *oe.Param != c.param || oe.Code == nil || *oe.Code != c.code {
			t.Errorf("want %s at %s: %v", c.code, c.param, err)
		}
	}
	if _, err := NewLocal(l.m, LocalConfig{ContextLength: MaxContextLength + 1}); err == nil {
		t.Error("context over 128K accepted")
	}
}

func TestLocal_CancelledContextStops(t *testing.T) {
	l := randomLocal(t, LocalConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := l.ChatCompletion(ctx, chatReq(t, `{"model":"lumen-mm","messages":[{"role":"user","content":"hi"}]}`), nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// TestLocal_OpenAIClientAsksTheTrainedModel serves the trained tiny model through openai's
// Handler and asks audio and text questions with the official Go client.
func TestLocal_OpenAIClientAsksTheTrainedModel(t *testing.T) {
	m := trainedTiny(t)
	l, err := NewLocal(m, LocalConfig{ModelID: "lumen-tiny"})
	if err != nil {
		t.Fatal(err)
	}
	h, err := openai.NewHandler(openai.HandlerConfig{Backend: l, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := oa.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey("test"), option.WithMaxRetries(0))
	ctx := context.Background()
	ask := func(parts ...oa.ChatCompletionContentPartUnionParam) string {
		c, err := client.Chat.Completions.New(ctx, oa.ChatCompletionNewParams{Model: "lumen-tiny", Temperature: oa.Float(0),
			Messages: []oa.ChatCompletionMessageParamUnion{oa.UserMessage(parts)}})
		if err != nil {
			t.Fatal(err)
		}
		return c.Choices[0].Message.Content
	}
	for _, c := range []struct {
		n    int
		freq float64
		q    string
		want string
	}{
		{2, 2200, "Is the tone high or low?", "high"},
		{1, 300, "Is the tone high or low?", "low"},
		{3, 400, "How many beeps?", "3"},
	} {
		wav := base64.StdEncoding.EncodeToString(EncodeWAV(Beeps(c.n, c.freq)))
		got := ask(oa.InputAudioContentPart(oa.ChatCompletionContentPartInputAudioInputAudioParam{Data: wav, Format: "wav"}), oa.TextContentPart(c.q))
		if got != c.want {
			t.Errorf("%d beeps at %v Hz, %q: %q, want %q", c.n, c.freq, c.q, got, c.want)
		}
	}
	if !raceDetector {
		if got := ask(oa.TextContentPart("Is 37 even or odd?")); got != "odd" {
			t.Errorf("parity of 37: %q", got)
		}
	}
	var img bytes.Buffer
	_ = png.Encode(&img, DrawShape("square", Colours["blue"], 16, 16, 8))
	url := "data:image/png;base64," + base64.StdEncoding.EncodeToString(img.Bytes())
	// The tiny model is not trained on images: this checks the path, not the answer.
	if got := ask(oa.ImageContentPart(oa.ChatCompletionContentPartImageImageURLParam{URL: url}), oa.TextContentPart("What colour is the shape?")); got == "" {
		t.Log("empty answer to the image question")
	}
}

func TestUTF8DFA_AgreesWithTheStandardLibrary(t *testing.T) {
	cases := [][]byte{[]byte("héllo"), []byte("日本"), []byte("\xed\xa0\x80"), []byte("\xc0\xaf"), []byte("\xf4\x90\x80\x80"), []byte("\xf0\x9f\x98\x80"), {0xe0, 0x80, 0x80}}
	r := uint32(1)
	for i := 0; i < 20000; i++ {
		b := make([]byte, 1+i%5)
		for j := range b {
			r = r*1664525 + 1013904223
			b[j] = byte(r >> 24)
		}
		cases = append(cases, b)
	}
	for _, b := range cases {
		st := utfRun(utfAccept, b)
		if got, want := st == utfAccept, utf8.Valid(b); got != want {
			t.Fatalf("% x: DFA valid=%v (state %d), utf8.Valid=%v", b, got, st, want)
		}
	}
}

func TestLocal_ConcurrentRequestsShareTheModel(t *testing.T) {
	l := randomLocal(t, LocalConfig{})
	req := `{"model":"lumen-mm","messages":[{"role":"user","content":"hi"}],"max_tokens":10,"seed":11,"temperature":1}`
	want := *complete(t, l, req).Choices[0].Message.Content
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		r := chatReq(t, req)
		go func() {
			c, err := l.ChatCompletion(context.Background(), r, nil)
			if err == nil && *c.Choices[0].Message.Content != want {
				err = errors.New("content " + *c.Choices[0].Message.Content + " differs from " + want)
			}
			errs <- err
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
