package openai

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/lumenflow/lumen/model/jsonschema"
)

// ValidateOptions are the deployment's limits on requests. The zero value takes the defaults.
type ValidateOptions struct {
	// ImageFormats are the image types accepted in data URLs: "png", "jpeg", "gif", "webp".
	// Default: png, jpeg, gif (what the standard library decodes).
	ImageFormats []string
	// AudioFormats are the input_audio formats accepted: "wav", "mp3". Default: wav.
	AudioFormats []string
	// MaxN is the largest n. Default 8.
	MaxN int
	// MaxMediaBytes caps one decoded image or audio part. Default 20 MiB.
	MaxMediaBytes int
	// MaxTools is the most tools a request may offer. Default 128, as OpenAI.
	MaxTools int
}

func (o ValidateOptions) withDefaults() ValidateOptions {
	if o.ImageFormats == nil {
		o.ImageFormats = []string{"png", "jpeg", "gif"}
	}
	if o.AudioFormats == nil {
		o.AudioFormats = []string{"wav"}
	}
	if o.MaxN == 0 {
		o.MaxN = 8
	}
	if o.MaxMediaBytes == 0 {
		o.MaxMediaBytes = 20 << 20
	}
	if o.MaxTools == 0 {
		o.MaxTools = 128
	}
	return o
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// DecodeRequest parses a request body, refusing unknown shapes with an *Error naming the field.
func DecodeRequest(body []byte) (*ChatCompletionRequest, *Error) {
	var r ChatCompletionRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&r); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, Invalid(te.Field, CodeInvalidType, "Invalid type for '%s': expected %s, got a JSON %s.", te.Field, te.Type, te.Value)
		}
		return nil, Invalid("", "", "We could not parse the JSON body of your request: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF { // dec.More would let a closing '}' or ']' through
		return nil, Invalid("", "", "We could not parse the JSON body of your request: data after the JSON object.")
	}
	return &r, nil
}

// Parts returns the message content as parts: a string content is one text part, null or absent
// content none.
func (m *Message) Parts() ([]ContentPart, error) {
	c := bytes.TrimSpace(m.Content)
	if len(c) == 0 || string(c) == "null" {
		return nil, nil
	}
	switch c[0] {
	case '"':
		var s string
		if err := json.Unmarshal(c, &s); err != nil {
			return nil, err
		}
		return []ContentPart{{Type: PartText, Text: s}}, nil
	case '[':
		var parts []ContentPart
		if err := json.Unmarshal(c, &parts); err != nil {
			return nil, err
		}
		return parts, nil
	}
	return nil, errors.New("content must be a string, an array of content parts, or null")
}

// Text is the concatenation of the message's text (and refusal) parts.
func (m *Message) Text() string {
	parts, _ := m.Parts()
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
		b.WriteString(p.Refusal)
	}
	return b.String()
}

// TextContent returns raw content holding the string s.
func TextContent(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// Media is a decoded image or audio part.
type Media struct {
	Format string // png, jpeg, gif, webp; wav, mp3
	Data   []byte
}

// sniffImage names an image format from its first bytes.
func sniffImage(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return "png"
	case bytes.HasPrefix(b, []byte{0xFF, 0xD8, 0xFF}):
		return "jpeg"
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return "gif"
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return "webp"
	}
	return ""
}

func sniffAudio(b []byte) string {
	switch {
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WAVE":
		return "wav"
	case bytes.HasPrefix(b, []byte("ID3")), len(b) >= 2 && b[0] == 0xFF && b[1]&0xE0 == 0xE0:
		return "mp3"
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// DecodeImageURL decodes a data: URL image, checking its bytes are one of formats.
func DecodeImageURL(url string, formats []string, maxBytes int) (Media, error) {
	rest, ok := strings.CutPrefix(url, "data:")
	if !ok {
		return Media{}, errors.New("only data: URLs are supported for images (data:image/png;base64,...)")
	}
	meta, data, ok := strings.Cut(rest, ",")
	if !ok || !strings.HasSuffix(meta, ";base64") {
		return Media{}, errors.New("the image data URL must be base64 encoded (data:image/png;base64,...)")
	}
	if base64.StdEncoding.DecodedLen(len(data)) > maxBytes {
		return Media{}, fmt.Errorf("the image is over the limit of %d bytes", maxBytes)
	}
	raw, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return Media{}, fmt.Errorf("the image data URL is not valid base64: %v", err)
	}
	f := sniffImage(raw)
	if f == "" || !contains(formats, f) {
		got := f
		if got == "" {
			got = "unrecognised"
		}
		return Media{}, fmt.Errorf("unsupported image format (%s); supported: %s", got, strings.Join(formats, ", "))
	}
	return Media{Format: f, Data: raw}, nil
}

// DecodeAudio decodes an input_audio part, checking its bytes match its format.
func DecodeAudio(a *InputAudio, formats []string, maxBytes int) (Media, error) {
	if !contains(formats, a.Format) {
		return Media{}, fmt.Errorf("unsupported audio format %q; supported: %s", a.Format, strings.Join(formats, ", "))
	}
	if base64.StdEncoding.DecodedLen(len(a.Data)) > maxBytes {
		return Media{}, fmt.Errorf("the audio is over the limit of %d bytes", maxBytes)
	}
	raw, err := base64.StdEncoding.DecodeString(a.Data)
	if err != nil {
		return Media{}, fmt.Errorf("the audio data is not valid base64: %v", err)
	}
	if got := sniffAudio(raw); got != a.Format {
		return Media{}, fmt.Errorf("the audio data is not %s", a.Format)
	}
	return Media{Format: a.Format, Data: raw}, nil
}

// ToolChoice is a parsed tool_choice.
type ToolChoice struct {
	Mode string // "none", "auto", "required" or "function"
	Name string // the function, when Mode is "function"
}

// ParseToolChoice reads tool_choice. Absent, it is "auto" when tools are given, else "none".
func (r *ChatCompletionRequest) ParseToolChoice() (ToolChoice, error) {
	c := bytes.TrimSpace(r.ToolChoice)
	if len(c) == 0 || string(c) == "null" {
		if len(r.Tools) > 0 {
			return ToolChoice{Mode: "auto"}, nil
		}
		return ToolChoice{Mode: "none"}, nil
	}
	if c[0] == '"' {
		var s string
		if err := json.Unmarshal(c, &s); err != nil {
			return ToolChoice{}, err
		}
		switch s {
		case "none", "auto", "required":
			return ToolChoice{Mode: s}, nil
		}
		return ToolChoice{}, fmt.Errorf("tool_choice %q is not one of none, auto, required", s)
	}
	var obj struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(c, &obj); err != nil {
		return ToolChoice{}, errors.New("tool_choice must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}")
	}
	if obj.Type != "function" {
		return ToolChoice{}, fmt.Errorf("tool_choice type %q is not supported; use \"function\"", obj.Type)
	}
	return ToolChoice{Mode: "function", Name: obj.Function.Name}, nil
}

// StopSequences reads stop: a string, an array of strings, or absent.
func (r *ChatCompletionRequest) StopSequences() ([]string, error) {
	c := bytes.TrimSpace(r.Stop)
	if len(c) == 0 || string(c) == "null" {
		return nil, nil
	}
	if c[0] == '"' {
		var s string
		if err := json.Unmarshal(c, &s); err != nil {
			return nil, err
		}
		return []string{s}, nil
	}
	var list []string
	if err := json.Unmarshal(c, &list); err != nil {
		return nil, errors.New("stop must be a string or an array of strings")
	}
	return list, nil
}

// MaxOutputTokens is max_completion_tokens, else max_tokens, else 0 (the backend's default).
func (r *ChatCompletionRequest) MaxOutputTokens() int {
	switch {
	case r.MaxCompletionTokens != nil:
		return *r.MaxCompletionTokens
	case r.MaxTokens != nil:
		return *r.MaxTokens
	}
	return 0
}

// Choices is n, 1 when absent.
func (r *ChatCompletionRequest) Choices() int {
	if r.N == nil {
		return 1
	}
	return *r.N
}

// OutputSchema is the schema the answer must follow: nil for text, jsonschema.AnyObject for
// json_object, the compiled schema for json_schema.
func (r *ChatCompletionRequest) OutputSchema() (*jsonschema.Schema, error) {
	f := r.ResponseFormat
	if f == nil || f.Type == "" || f.Type == "text" {
		return nil, nil
	}
	if f.Type == "json_object" {
		return jsonschema.AnyObject(), nil
	}
	if f.JSONSchema == nil || isNull(f.JSONSchema.Schema) {
		return nil, errors.New("json_schema.schema is required")
	}
	return jsonschema.Compile(f.JSONSchema.Schema)
}

// ParametersSchema compiles a function tool's parameters; absent parameters take no arguments
// ({}).
func (t *Tool) ParametersSchema() (*jsonschema.Schema, error) {
	return compileSchema(t.Function.Parameters)
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

func compileSchema(raw json.RawMessage) (*jsonschema.Schema, error) {
	if isNull(raw) {
		return jsonschema.Compile([]byte(`{"type":"object","properties":{},"additionalProperties":false}`))
	}
	return jsonschema.Compile(raw)
}

func schemaErr(param string, err error) *Error {
	var se *jsonschema.SchemaError
	if errors.As(err, &se) {
		return Invalid(param, CodeInvalidSchema, "Invalid schema at %s: %s (JSON pointer #%s).", param, se.Msg, se.Pointer)
	}
	return Invalid(param, CodeInvalidSchema, "Invalid schema at %s: %v.", param, err)
}

// Validate checks a request against the chat-completions rules and the deployment's options,
// decoding every image and audio part. The first problem found is returned, naming its field.
func (r *ChatCompletionRequest) Validate(opt ValidateOptions) *Error {
	opt = opt.withDefaults()
	if r.Model == "" {
		return Invalid("model", CodeMissing, "you must provide a model parameter")
	}
	if len(r.Messages) == 0 {
		return Invalid("messages", CodeMissing, "'messages' must contain at least one message")
	}
	toolCallIDs := map[string]bool{}
	for i := range r.Messages {
		if err := r.validateMessage(i, opt, toolCallIDs); err != nil {
			return err
		}
	}
	if len(r.Tools) > opt.MaxTools {
		return Invalid("tools", CodeInvalidValue, "Invalid 'tools': at most %d tools, got %d.", opt.MaxTools, len(r.Tools))
	}
	names := map[string]bool{}
	for i, t := range r.Tools {
		p := fmt.Sprintf("tools[%d]", i)
		if t.Type != "function" {
			return Invalid(p+".type", CodeInvalidValue, "Invalid value: '%s'. Supported values are: 'function'.", t.Type)
		}
		if !nameRE.MatchString(t.Function.Name) {
			return Invalid(p+".function.name", CodeInvalidValue, "Invalid function name %q: it must be 1-64 characters of a-z, A-Z, 0-9, _ and -.", t.Function.Name)
		}
		if names[t.Function.Name] {
			return Invalid(p+".function.name", CodeInvalidValue, "Duplicate function name %q.", t.Function.Name)
		}
		names[t.Function.Name] = true
		if _, err := t.ParametersSchema(); err != nil {
			return schemaErr(p+".function.parameters", err)
		}
	}
	tc, err := r.ParseToolChoice()
	if err != nil {
		return Invalid("tool_choice", CodeInvalidValue, "Invalid tool_choice: %v.", err)
	}
	switch {
	case tc.Mode == "function" && !names[tc.Name]:
		return Invalid("tool_choice", CodeInvalidValue, "Invalid tool_choice: no tool named %q in tools.", tc.Name)
	case tc.Mode == "required" && len(r.Tools) == 0:
		return Invalid("tool_choice", CodeInvalidValue, "tool_choice 'required' needs tools.")
	}
	if f := r.ResponseFormat; f != nil {
		switch f.Type {
		case "text", "json_object":
		case "json_schema":
			if f.JSONSchema == nil {
				return Invalid("response_format.json_schema", CodeMissing, "Missing required parameter: 'response_format.json_schema'.")
			}
			if !nameRE.MatchString(f.JSONSchema.Name) {
				return Invalid("response_format.json_schema.name", CodeInvalidValue, "Invalid name %q: it must be 1-64 characters of a-z, A-Z, 0-9, _ and -.", f.JSONSchema.Name)
			}
			if isNull(f.JSONSchema.Schema) {
				return Invalid("response_format.json_schema.schema", CodeMissing, "Missing required parameter: 'response_format.json_schema.schema'.")
			}
			if _, err := jsonschema.Compile(f.JSONSchema.Schema); err != nil {
				return schemaErr("response_format.json_schema.schema", err)
			}
		default:
			return Invalid("response_format.type", CodeInvalidValue, "Invalid value: '%s'. Supported values are: 'text', 'json_object' and 'json_schema'.", f.Type)
		}
	}
	if r.N != nil && (*r.N < 1 || *r.N > opt.MaxN) {
		return Invalid("n", CodeInvalidValue, "Invalid 'n': %d. It must be between 1 and %d.", *r.N, opt.MaxN)
	}
	if r.Temperature != nil && (*r.Temperature < 0 || *r.Temperature > 2) {
		return Invalid("temperature", CodeInvalidValue, "Invalid 'temperature': %g. It must be between 0 and 2.", *r.Temperature)
	}
	if r.TopP != nil && (*r.TopP < 0 || *r.TopP > 1) {
		return Invalid("top_p", CodeInvalidValue, "Invalid 'top_p': %g. It must be between 0 and 1.", *r.TopP)
	}
	if r.PresencePenalty != nil && (*r.PresencePenalty < -2 || *r.PresencePenalty > 2) {
		return Invalid("presence_penalty", CodeInvalidValue, "Invalid 'presence_penalty': %g. It must be between -2 and 2.", *r.PresencePenalty)
	}
	if r.FrequencyPenalty != nil && (*r.FrequencyPenalty < -2 || *r.FrequencyPenalty > 2) {
		return Invalid("frequency_penalty", CodeInvalidValue, "Invalid 'frequency_penalty': %g. It must be between -2 and 2.", *r.FrequencyPenalty)
	}
	if r.MaxTokens != nil && *r.MaxTokens < 1 {
		return Invalid("max_tokens", CodeInvalidValue, "Invalid 'max_tokens': %d. It must be at least 1.", *r.MaxTokens)
	}
	if r.MaxCompletionTokens != nil && *r.MaxCompletionTokens < 1 {
		return Invalid("max_completion_tokens", CodeInvalidValue, "Invalid 'max_completion_tokens': %d. It must be at least 1.", *r.MaxCompletionTokens)
	}
	stops, err := r.StopSequences()
	if err != nil {
		return Invalid("stop", CodeInvalidType, "Invalid 'stop': %v.", err)
	}
	if len(stops) > 4 {
		return Invalid("stop", CodeInvalidValue, "Invalid 'stop': at most 4 sequences, got %d.", len(stops))
	}
	for i, s := range stops {
		if s == "" {
			return Invalid(fmt.Sprintf("stop[%d]", i), CodeInvalidValue, "Invalid 'stop': sequences must not be empty.")
		}
	}
	if r.Logprobs != nil && *r.Logprobs {
		return Invalid("logprobs", CodeUnsupported, "logprobs are not supported by this server.")
	}
	if r.TopLogprobs != nil {
		return Invalid("top_logprobs", CodeUnsupported, "top_logprobs are not supported by this server.")
	}
	if r.StreamOptions != nil && !r.Stream {
		return Invalid("stream_options", CodeInvalidValue, "The 'stream_options' parameter is only allowed when 'stream' is enabled.")
	}
	return nil
}

func (r *ChatCompletionRequest) validateMessage(i int, opt ValidateOptions, toolCallIDs map[string]bool) *Error {
	m := &r.Messages[i]
	p := fmt.Sprintf("messages[%d]", i)
	parts, err := m.Parts()
	if err != nil {
		return Invalid(p+".content", CodeInvalidType, "Invalid 'content' of %s: %v.", p, err)
	}
	allowed := map[string]bool{PartText: true}
	switch m.Role {
	case RoleSystem, RoleDeveloper:
	case RoleUser:
		allowed[PartImageURL] = true
		allowed[PartInputAudio] = true
	case RoleAssistant:
		allowed[PartRefusal] = true
		for j, tc := range m.ToolCalls {
			tp := fmt.Sprintf("%s.tool_calls[%d]", p, j)
			if tc.ID == "" {
				return Invalid(tp+".id", CodeMissing, "Missing required parameter: '%s.id'.", tp)
			}
			if tc.Type != "function" {
				return Invalid(tp+".type", CodeInvalidValue, "Invalid value: '%s'. Supported values are: 'function'.", tc.Type)
			}
			if tc.Function.Name == "" {
				return Invalid(tp+".function.name", CodeMissing, "Missing required parameter: '%s.function.name'.", tp)
			}
			toolCallIDs[tc.ID] = true
		}
		if len(parts) == 0 && len(m.ToolCalls) == 0 && m.Refusal == nil {
			return Invalid(p+".content", CodeMissing, "An assistant message needs content, tool_calls or a refusal.")
		}
	case RoleTool:
		if m.ToolCallID == "" {
			return Invalid(p+".tool_call_id", CodeMissing, "Missing required parameter: '%s.tool_call_id'.", p)
		}
		if !toolCallIDs[m.ToolCallID] {
			return Invalid(p+".tool_call_id", CodeInvalidValue, "Invalid '%s.tool_call_id' %q: messages with role 'tool' must answer a tool call of an earlier assistant message.", p, m.ToolCallID)
		}
	case "":
		return Invalid(p+".role", CodeMissing, "Missing required parameter: '%s.role'.", p)
	default:
		return Invalid(p+".role", CodeInvalidValue, "Invalid value: '%s'. Supported values are: 'system', 'developer', 'user', 'assistant' and 'tool'.", m.Role)
	}
	if m.Role != RoleAssistant && len(parts) == 0 {
		if len(bytes.TrimSpace(m.Content)) == 0 || string(bytes.TrimSpace(m.Content)) == "null" {
			return Invalid(p+".content", CodeMissing, "Missing required parameter: '%s.content'.", p)
		}
		if m.Content[0] == '[' {
			return Invalid(p+".content", CodeInvalidValue, "Invalid '%s.content': empty array. Expected an array with minimum length 1.", p)
		}
	}
	for j, part := range parts {
		pp := fmt.Sprintf("%s.content[%d]", p, j)
		if !allowed[part.Type] {
			return Invalid(pp+".type", CodeInvalidValue, "Invalid value: '%s'. Content parts of %s messages may not be of this type.", part.Type, m.Role)
		}
		switch part.Type {
		case PartImageURL:
			if part.ImageURL == nil || part.ImageURL.URL == "" {
				return Invalid(pp+".image_url.url", CodeMissing, "Missing required parameter: '%s.image_url.url'.", pp)
			}
			switch part.ImageURL.Detail {
			case "", "auto", "low", "high":
			default:
				return Invalid(pp+".image_url.detail", CodeInvalidValue, "Invalid value: '%s'. Supported values are: 'auto', 'low' and 'high'.", part.ImageURL.Detail)
			}
			if _, err := DecodeImageURL(part.ImageURL.URL, opt.ImageFormats, opt.MaxMediaBytes); err != nil {
				return Invalid(pp+".image_url.url", "invalid_image_format", "Invalid image: %v.", err)
			}
		case PartInputAudio:
			if part.InputAudio == nil || part.InputAudio.Data == "" {
				return Invalid(pp+".input_audio.data", CodeMissing, "Missing required parameter: '%s.input_audio.data'.", pp)
			}
			if _, err := DecodeAudio(part.InputAudio, opt.AudioFormats, opt.MaxMediaBytes); err != nil {
				param := pp + ".input_audio.data"
				if !contains(opt.AudioFormats, part.InputAudio.Format) {
					param = pp + ".input_audio.format"
				}
				return Invalid(param, "invalid_audio_format", "Invalid audio: %v.", err)
			}
		}
	}
	return nil
}
