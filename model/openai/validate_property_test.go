package openai

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"

	"pgregory.net/rapid"
)

var tinyPNG = base64.StdEncoding.EncodeToString([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"))

// genRequest draws a valid request: a few turns with text, image and audio parts, tools and
// tool calls answered by tool messages, and some sampling options.
func genRequest(t *rapid.T) *ChatCompletionRequest {
	r := &ChatCompletionRequest{Model: "lumen-test"}
	if rapid.Bool().Draw(t, "system") {
		r.Messages = append(r.Messages, Message{Role: RoleSystem, Content: TextContent("be brief")})
	}
	ntools := rapid.IntRange(0, 3).Draw(t, "ntools")
	for i := 0; i < ntools; i++ {
		r.Tools = append(r.Tools, Tool{Type: "function", Function: FunctionDefinition{Name: fmt.Sprintf("tool_%d", i),
			Parameters: json.RawMessage(`{"type":"object","properties":{"x":{"type":"integer"}},"required":["x"],"additionalProperties":false}`)}})
	}
	turns := rapid.IntRange(1, 4).Draw(t, "turns")
	for i := 0; i < turns; i++ {
		var parts []ContentPart
		for j := rapid.IntRange(1, 3).Draw(t, "nparts"); j > 0; j-- {
			switch rapid.IntRange(0, 2).Draw(t, "part") {
			case 0:
				parts = append(parts, ContentPart{Type: PartText, Text: "hello"})
			case 1:
				parts = append(parts, ContentPart{Type: PartImageURL, ImageURL: &ImageURL{URL: "data:image/png;base64," + tinyPNG}})
			case 2:
				parts = append(parts, ContentPart{Type: PartInputAudio, InputAudio: &InputAudio{Data: wavBase64(), Format: "wav"}})
			}
		}
		content, _ := json.Marshal(parts)
		r.Messages = append(r.Messages, Message{Role: RoleUser, Content: content})
		if ntools > 0 && rapid.Bool().Draw(t, "call") {
			id := fmt.Sprintf("call_%d", i)
			r.Messages = append(r.Messages,
				Message{Role: RoleAssistant, ToolCalls: []ToolCall{{ID: id, Type: "function", Function: FunctionCall{Name: "tool_0", Arguments: `{"x":1}`}}}},
				Message{Role: RoleTool, ToolCallID: id, Content: TextContent("42")})
		} else if i < turns-1 {
			r.Messages = append(r.Messages, Message{Role: RoleAssistant, Content: TextContent("ok")})
		}
	}
	if rapid.Bool().Draw(t, "temperature") {
		v := rapid.Float64Range(0, 2).Draw(t, "t")
		r.Temperature = &v
	}
	if rapid.Bool().Draw(t, "n") {
		v := rapid.IntRange(1, 8).Draw(t, "nv")
		r.N = &v
	}
	if ntools > 0 {
		r.ToolChoice = json.RawMessage(rapid.SampledFrom([]string{`"auto"`, `"none"`, `"required"`, `{"type":"function","function":{"name":"tool_0"}}`}).Draw(t, "choice"))
	}
	return r
}

// A valid request passes; one mutation makes it fail, naming the mutated field.
func TestProperty_ValidationNamesTheMutatedField(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r := genRequest(t)
		// Round-trip through JSON as a client would send it.
		body, _ := json.Marshal(r)
		req, e := DecodeRequest(body)
		if e != nil {
			t.Fatalf("decode: %v", e)
		}
		if e := req.Validate(ValidateOptions{}); e != nil {
			t.Fatalf("valid request refused: %v\n%s", e, body)
		}
		last := len(req.Messages) - 1
		type mutation struct {
			param string
			apply func()
		}
		muts := []mutation{
			{"temperature", func() { v := 2.01; req.Temperature = &v }},
			{"top_p", func() { v := 1.5; req.TopP = &v }},
			{"n", func() { v := 0; req.N = &v }},
			{"max_completion_tokens", func() { v := -1; req.MaxCompletionTokens = &v }},
			{"stop", func() { req.Stop = json.RawMessage(`["a","b","c","d","e"]`) }},
			{fmt.Sprintf("messages[%d].role", last), func() { req.Messages[last].Role = "robot" }},
			{"model", func() { req.Model = "" }},
		}
		for i, m := range req.Messages {
			i := i
			if m.Role != RoleUser {
				continue
			}
			parts, _ := m.Parts()
			for j, p := range parts {
				j := j
				switch p.Type {
				case PartImageURL:
					muts = append(muts, mutation{fmt.Sprintf("messages[%d].content[%d].image_url.url", i, j), func() {
						parts[j].ImageURL = &ImageURL{URL: "https://example.com/cat.png"}
						req.Messages[i].Content, _ = json.Marshal(parts)
					}})
				case PartInputAudio:
					muts = append(muts, mutation{fmt.Sprintf("messages[%d].content[%d].input_audio.format", i, j), func() {
						parts[j].InputAudio = &InputAudio{Data: p.InputAudio.Data, Format: "flac"}
						req.Messages[i].Content, _ = json.Marshal(parts)
					}})
				}
			}
		}
		if len(req.Tools) > 0 {
			k := len(req.Tools) - 1
			muts = append(muts,
				mutation{"tool_choice", func() { req.ToolChoice = json.RawMessage(`{"type":"function","function":{"name":"nope"}}`) }},
				mutation{fmt.Sprintf("tools[%d].function.parameters", k), func() {
					req.Tools[k].Function.Parameters = json.RawMessage(`{"type":"object","properties":{"x":{"type":"integer","minimum":1}}}`)
				}},
				mutation{fmt.Sprintf("tools[%d].function.name", k), func() { req.Tools[k].Function.Name = "bad name!" }},
			)
		}
		m := rapid.SampledFrom(muts).Draw(t, "mutation")
		m.apply()
		e = req.Validate(ValidateOptions{})
		if e == nil || e.Param == nil || *e.Param != m.param || e.Status != 400 {
			t.Fatalf("mutation of %s: got %v", m.param, e)
		}
	})
}
