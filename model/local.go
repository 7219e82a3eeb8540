package model

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lumenflow/lumen/model/jsonschema"
	"github.com/lumenflow/lumen/model/openai"
)

// MaxContextLength is the largest context a [Local] may be configured with.
const MaxContextLength = 128 << 10

// LocalConfig configures a [Local] backend. The zero value of a field takes the default noted.
type LocalConfig struct {
	ModelID       string // the id listed by Models and expected in requests (default "lumen-mm")
	ContextLength int    // prompt plus completion positions (default the model's max_seq; at most 128K)
	MaxTokens     int    // completion tokens when a request sets no limit (default 256)
	Created       int64  // the model's creation time in Models (default: when NewLocal ran)
}

// Local serves a trained [Model] as an [openai.Backend]: it renders the chat template, prefills
// the prompt once, and decodes each of the n choices with the KV cache, masking tokens so that
// tool-call arguments follow each tool's parameters schema and response_format output follows
// its schema. It is safe for concurrent use; each request decodes on its own caches.
type Local struct {
	m      *Model
	cfg    LocalConfig
	tmpl   Template
	masker *jsonschema.Masker
	text   []bool             // tokens allowed in free text: every non-special token
	utf    [utfStates][]uint8 // per UTF-8 state, each token's next state (utfBad: not allowed)
	end    int
	eos    int
	call   int
	callE  int
}

// NewLocal returns a backend over m.
func NewLocal(m *Model, cfg LocalConfig) (*Local, error) {
	if cfg.ModelID == "" {
		cfg.ModelID = "lumen-mm"
	}
	if cfg.ContextLength == 0 {
		cfg.ContextLength = m.Config.MaxSeq
	}
	if cfg.ContextLength < 1 || cfg.ContextLength > MaxContextLength {
		return nil, fmt.Errorf("local backend: context length %d outside 1..%d", cfg.ContextLength, MaxContextLength)
	}
	if cfg.MaxTokens == 0 {
		cfg.MaxTokens = 256
	}
	if cfg.MaxTokens < 0 {
		return nil, fmt.Errorf("local backend: max tokens %d is negative", cfg.MaxTokens)
	}
	if cfg.Created == 0 {
		cfg.Created = time.Now().Unix()
	}
	// Rotary positions have no learned table, so the context is a limit the backend sets.
	mm := *m
	mm.Config.MaxSeq = cfg.ContextLength
	l := &Local{m: &mm, cfg: cfg, tmpl: Template{Tok: m.Tok, Cfg: m.Config}, masker: jsonschema.NewMasker(m.Tok.Vocab()),
		end: m.Tok.Special(TokEnd), eos: m.Tok.Special(TokEOS), call: m.Tok.Special(TokCallStart), callE: m.Tok.Special(TokCallEnd)}
	l.text = make([]bool, m.Tok.VocabSize())
	for i := range l.text {
		l.text[i] = !m.Tok.IsSpecial(i)
	}
	for st := range l.utf {
		l.utf[st] = make([]uint8, m.Tok.VocabSize())
		for i := range l.utf[st] {
			l.utf[st][i] = utfBad
			if l.text[i] {
				l.utf[st][i] = utfRun(uint8(st), m.Tok.Piece(i))
			}
		}
	}
	return l, nil
}

// Models lists the one model this backend serves.
func (l *Local) Models() []openai.Model {
	return []openai.Model{{ID: l.cfg.ModelID, Object: "model", Created: l.cfg.Created, OwnedBy: "lumen"}}
}

// request is one ChatCompletion call, parsed.
type request struct {
	prompt     []Item
	tools      []string           // the request's tool names
	call       *jsonschema.Schema // of a whole call, {"name":…,"arguments":…}, over the callable tools
	choice     openai.ToolChoice
	parallel   bool
	format     *jsonschema.Schema
	stops      []string
	maxTokens  int
	temp, topP float64
	seed       uint64
}

// ChatCompletion runs one request validated by openai's Validate.
func (l *Local) ChatCompletion(ctx context.Context, req *openai.ChatCompletionRequest, emit func(*openai.ChatCompletionChunk) error) (*openai.ChatCompletion, error) {
	r, err := l.parse(req)
	if err != nil {
		return nil, err
	}
	if len(r.prompt) >= l.cfg.ContextLength { // room for at least one completion token
		return nil, openai.ContextLengthExceeded(len(r.prompt), l.cfg.ContextLength)
	}
	cache := l.m.NewCache()
	logits, err := l.m.Step(cache, r.prompt)
	if err != nil {
		return nil, fmt.Errorf("prefill: %w", err)
	}
	out := &openai.ChatCompletion{ID: "chatcmpl-" + randomID(), Object: "chat.completion", Created: time.Now().Unix(), Model: req.Model,
		Usage: &openai.Usage{PromptTokens: len(r.prompt)}}
	for i := 0; i < req.Choices(); i++ {
		d := &decoder{l: l, r: r, index: i, cache: cache.Clone(), logits: logits, ctx: ctx, emit: emit, meta: out,
			sampler: NewSampler(r.temp, r.topP, r.seed+uint64(i))}
		ch, err := d.run()
		if err != nil {
			return nil, err
		}
		out.Choices = append(out.Choices, ch)
		out.Usage.CompletionTokens += d.generated
	}
	out.Usage.TotalTokens = out.Usage.PromptTokens + out.Usage.CompletionTokens
	return out, nil
}

func randomID() string {
	const digits = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 24)
	for i := range b {
		b[i] = digits[rand.IntN(len(digits))]
	}
	return string(b)
}

// parse turns the wire request into the prompt and decoding settings. Errors are *openai.Error
// naming the field.
func (l *Local) parse(req *openai.ChatCompletionRequest) (*request, error) {
	r := &request{temp: 1, topP: 1, parallel: true}
	if req.Temperature != nil {
		r.temp = *req.Temperature
	}
	if req.TopP != nil {
		r.topP = *req.TopP
	}
	if req.Seed != nil {
		r.seed = uint64(*req.Seed)
	} else {
		r.seed = rand.Uint64()
	}
	if req.ParallelToolCalls != nil {
		r.parallel = *req.ParallelToolCalls
	}
	r.maxTokens = req.MaxOutputTokens()
	if r.maxTokens <= 0 {
		r.maxTokens = l.cfg.MaxTokens
	}
	var err error
	if r.stops, err = req.StopSequences(); err != nil {
		return nil, openai.Invalid("stop", openai.CodeInvalidType, "Invalid 'stop': %v.", err)
	}
	if r.choice, err = req.ParseToolChoice(); err != nil {
		return nil, openai.Invalid("tool_choice", openai.CodeInvalidValue, "Invalid tool_choice: %v.", err)
	}
	if r.format, err = req.OutputSchema(); err != nil {
		return nil, openai.Invalid("response_format", openai.CodeInvalidSchema, "Invalid response_format: %v.", err)
	}
	var tools []Tool
	var defs, alts []string
	for i, t := range req.Tools {
		if _, err := t.ParametersSchema(); err != nil {
			return nil, openai.Invalid(fmt.Sprintf("tools[%d].function.parameters", i), openai.CodeInvalidSchema, "Invalid schema: %v.", err)
		}
		r.tools = append(r.tools, t.Function.Name)
		tools = append(tools, Tool{Name: t.Function.Name, Description: t.Function.Description, Parameters: t.Function.Parameters})
		if r.choice.Mode == "function" && t.Function.Name != r.choice.Name {
			continue
		}
		def := fmt.Sprintf("t%d", i)
		params, err := rebaseRefs(t.Function.Parameters, "#/$defs/"+def)
		if err != nil {
			return nil, openai.Invalid(fmt.Sprintf("tools[%d].function.parameters", i), openai.CodeInvalidSchema, "Invalid schema: %v.", err)
		}
		name, _ := json.Marshal(t.Function.Name)
		defs = append(defs, fmt.Sprintf("%q:%s", def, params))
		alts = append(alts, `{"type":"object","properties":{"name":{"const":`+string(name)+`},"arguments":{"$ref":"#/$defs/`+def+
			`"}},"required":["name","arguments"],"additionalProperties":false}`)
	}
	if r.choice.Mode == "function" && !contains(r.tools, r.choice.Name) {
		return nil, openai.Invalid("tool_choice", openai.CodeInvalidValue, "Invalid tool_choice: no tool named %q in tools.", r.choice.Name)
	}
	if len(alts) > 0 {
		// One schema for the whole call, so that the model writes it in the tokens it was
		// trained on; each tool's schema sits under $defs with its $refs rebased there.
		doc := `{"anyOf":[` + strings.Join(alts, ",") + `],"$defs":{` + strings.Join(defs, ",") + `}}`
		if r.call, err = jsonschema.Compile([]byte(doc)); err != nil {
			return nil, openai.Invalid("tools", openai.CodeInvalidSchema, "Invalid tool schemas: %v.", err)
		}
	} else if r.choice.Mode == "required" || r.choice.Mode == "function" {
		return nil, openai.Invalid("tool_choice", openai.CodeInvalidValue, "tool_choice %q needs tools.", r.choice.Mode)
	}
	var msgs []Message
	for i := range req.Messages {
		m, err := convertMessage(&req.Messages[i], i)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	}
	if r.prompt, err = l.tmpl.Prompt(tools, msgs); err != nil {
		return nil, openai.Invalid("messages", openai.CodeInvalidValue, "%v", err)
	}
	return r, nil
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// convertMessage turns one wire message into a template message, decoding its media.
func convertMessage(m *openai.Message, i int) (Message, error) {
	p := fmt.Sprintf("messages[%d]", i)
	parts, err := m.Parts()
	if err != nil {
		return Message{}, openai.Invalid(p+".content", openai.CodeInvalidType, "Invalid 'content' of %s: %v.", p, err)
	}
	out := Message{Role: m.Role}
	switch m.Role {
	case openai.RoleSystem, openai.RoleDeveloper:
		out.Role = RoleSystem
	case openai.RoleUser, openai.RoleAssistant, openai.RoleTool:
	default:
		return Message{}, openai.Invalid(p+".role", openai.CodeInvalidValue, "Invalid value: '%s'.", m.Role)
	}
	for j, part := range parts {
		pp := fmt.Sprintf("%s.content[%d]", p, j)
		switch part.Type {
		case openai.PartText:
			out.Parts = append(out.Parts, Part{Text: part.Text})
		case openai.PartRefusal:
			out.Parts = append(out.Parts, Part{Text: part.Refusal})
		case openai.PartImageURL:
			if part.ImageURL == nil {
				return Message{}, openai.Invalid(pp+".image_url", openai.CodeMissing, "Missing required parameter: '%s.image_url'.", pp)
			}
			media, err := openai.DecodeImageURL(part.ImageURL.URL, []string{"png", "jpeg"}, 64<<20)
			if err != nil {
				return Message{}, openai.Invalid(pp+".image_url.url", openai.CodeInvalidValue, "Invalid image: %v.", err)
			}
			img, err := DecodeImage(media.Data)
			if err != nil {
				return Message{}, openai.Invalid(pp+".image_url.url", openai.CodeInvalidValue, "Invalid image: %v.", err)
			}
			out.Parts = append(out.Parts, Part{Image: img})
		case openai.PartInputAudio:
			if part.InputAudio == nil {
				return Message{}, openai.Invalid(pp+".input_audio", openai.CodeMissing, "Missing required parameter: '%s.input_audio'.", pp)
			}
			media, err := openai.DecodeAudio(part.InputAudio, []string{"wav"}, 64<<20)
			if err != nil {
				return Message{}, openai.Invalid(pp+".input_audio", openai.CodeInvalidValue, "Invalid audio: %v.", err)
			}
			samples, err := ParseWAV(media.Data)
			if err != nil {
				return Message{}, openai.Invalid(pp+".input_audio.data", openai.CodeInvalidValue, "Invalid audio: %v.", err)
			}
			if len(samples) == 0 {
				return Message{}, openai.Invalid(pp+".input_audio.data", openai.CodeInvalidValue, "Invalid audio: the wav file holds no samples.")
			}
			out.Parts = append(out.Parts, Part{Audio: samples})
		default:
			return Message{}, openai.Invalid(pp+".type", openai.CodeInvalidValue, "Invalid value: '%s'.", part.Type)
		}
	}
	if m.Refusal != nil {
		out.Parts = append(out.Parts, Part{Text: *m.Refusal})
	}
	for _, tc := range m.ToolCalls {
		args := json.RawMessage(tc.Function.Arguments)
		if !json.Valid(args) {
			args, _ = json.Marshal(tc.Function.Arguments)
		}
		out.ToolCalls = append(out.ToolCalls, ToolCall{ID: tc.ID, Name: tc.Function.Name, Arguments: args})
	}
	return out, nil
}

// Decoder phases.
const (
	phText  = iota // free text, or text under response_format's schema
	phCall         // inside a tool call
	phAfter        // after a tool call: another, or the end
)

// decoder produces one choice.
type decoder struct {
	l       *Local
	r       *request
	index   int
	cache   *Cache
	logits  []float32
	sampler *Sampler
	ctx     context.Context
	emit    func(*openai.ChatCompletionChunk) error
	meta    *openai.ChatCompletion

	generated int
	phase     int
	matcher   *jsonschema.Matcher // of the content (response_format) or of the current call part
	callBuf   []byte              // the current call's JSON so far
	argStart  int                 // where its arguments begin, once its name is known (else 0)
	argSent   int                 // argument bytes streamed
	content   []byte
	sent      int  // bytes of content already streamed
	anyText   bool // content was started
	calls     []openai.ToolCall
	roleSent  bool
	mask      []bool
	utf       uint8 // UTF-8 state of the free-text content
}

// feed runs ids through the model after the cached positions.
func (d *decoder) feed(ids []int) error {
	if len(ids) == 0 {
		return nil
	}
	items := make([]Item, len(ids))
	for i, id := range ids {
		items[i] = Item{Mod: Text, Token: id}
	}
	d.generated += len(ids)
	if d.cache.Len()+len(items) > d.l.cfg.ContextLength {
		return errContextFull
	}
	logits, err := d.l.m.Step(d.cache, items)
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	d.logits = logits
	return nil
}

var errContextFull = errors.New("context full")

// send emits one chunk for this choice (the first carries the role).
func (d *decoder) send(delta openai.ChunkDelta, finish string) error {
	if d.emit == nil {
		return nil
	}
	if !d.roleSent {
		delta.Role, d.roleSent = openai.RoleAssistant, true
	}
	c := openai.ChunkChoice{Index: d.index, Delta: delta}
	if finish != "" {
		c.FinishReason = &finish
	}
	return d.emit(&openai.ChatCompletionChunk{ID: d.meta.ID, Object: "chat.completion.chunk", Created: d.meta.Created,
		Model: d.meta.Model, Choices: []openai.ChunkChoice{c}})
}

// flushText streams the content not yet sent, holding back bytes that may begin a stop
// sequence or an unfinished UTF-8 rune unless final.
func (d *decoder) flushText(final bool) error {
	end := len(d.content)
	if !final {
		for _, s := range d.r.stops {
			for k := min(len(s)-1, end-d.sent); k > 0; k-- {
				if strings.HasSuffix(string(d.content), s[:k]) {
					end = min(end, len(d.content)-k)
					break
				}
			}
		}
		for end > d.sent && !utf8.FullRune(d.content[lastRuneStart(d.content[:end]):end]) {
			end = lastRuneStart(d.content[:end])
		}
	}
	if end <= d.sent {
		return nil
	}
	s := string(d.content[d.sent:end])
	d.sent = end
	return d.send(openai.ChunkDelta{Content: &s}, "")
}

func lastRuneStart(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-4; i-- {
		if utf8.RuneStart(b[i]) {
			return i
		}
	}
	return max(0, len(b)-1)
}

// callsAllowed says whether a tool call may start now.
func (d *decoder) callsAllowed() bool {
	r := d.r
	if len(r.tools) == 0 || r.choice.Mode == "none" || d.anyText {
		return false
	}
	if len(d.calls) > 0 && (!r.parallel || r.choice.Mode == "function") {
		return false
	}
	return true
}

// mustCall says whether the next thing must be a tool call.
func (d *decoder) mustCall() bool {
	return len(d.calls) == 0 && (d.r.choice.Mode == "required" || d.r.choice.Mode == "function")
}

func (d *decoder) run() (openai.Choice, error) {
	if d.r.format != nil {
		d.matcher = d.r.format.Start()
	}
	finish := ""
	for finish == "" {
		if err := d.ctx.Err(); err != nil {
			return openai.Choice{}, err
		}
		var err error
		finish, err = d.step()
		if errors.Is(err, errContextFull) {
			finish, err = openai.FinishLength, nil
		}
		if err != nil {
			return openai.Choice{}, err
		}
	}
	if finish == openai.FinishStop && len(d.calls) > 0 {
		finish = openai.FinishToolCalls
	}
	msg := openai.AssistantMessage{Role: openai.RoleAssistant, ToolCalls: d.calls}
	if d.matcher == nil && d.utf != utfAccept { // cut short inside a character: drop its start
		d.content = d.content[:lastRuneStart(d.content)]
	}
	if d.anyText || len(d.calls) == 0 {
		s := string(d.content)
		msg.Content = &s
		if err := d.flushText(true); err != nil {
			return openai.Choice{}, err
		}
		if !d.anyText && d.emit != nil { // an empty reply still has content ""
			empty := ""
			if err := d.send(openai.ChunkDelta{Content: &empty}, ""); err != nil {
				return openai.Choice{}, err
			}
		}
	}
	if err := d.send(openai.ChunkDelta{}, finish); err != nil {
		return openai.Choice{}, err
	}
	return openai.Choice{Index: d.index, Message: msg, FinishReason: finish, Logprobs: json.RawMessage("null")}, nil
}

// left is how many completion tokens remain.
func (d *decoder) left() int { return d.r.maxTokens - d.generated }

// step takes one decoding step and returns a finish reason once the choice is done.
func (d *decoder) step() (string, error) {
	if d.left() <= 0 {
		return openai.FinishLength, nil
	}
	switch d.phase {
	case phText:
		return d.stepText()
	case phCall:
		return d.stepCall()
	default:
		if !d.callsAllowed() {
			return openai.FinishToolCalls, nil
		}
		allowed := make([]bool, len(d.l.text))
		allowed[d.l.end], allowed[d.l.call] = true, true
		if d.sampler.Sample(d.logits, allowed) == d.l.call {
			return "", d.startCall()
		}
		return openai.FinishToolCalls, nil
	}
}

func (d *decoder) stepText() (string, error) {
	if d.mustCall() {
		return "", d.startCall()
	}
	l := d.l
	var allowed []bool
	if d.matcher != nil {
		// Close the document in the tokens left, if it comes to that.
		if !d.matcher.Accepting() {
			if comp := d.matcher.Completion(); len(l.m.Tok.Encode(comp)) >= d.left() {
				d.generated += len(l.m.Tok.Encode(comp))
				d.addText(comp)
				return openai.FinishLength, d.flushText(false)
			}
		}
		d.mask = l.masker.Allowed(d.matcher, d.mask)
		allowed = d.mask
		allowed[l.end] = d.matcher.Accepting()
	} else {
		// Free text stays valid UTF-8: a token that would break it is masked, and the reply
		// cannot end inside a character.
		d.mask = append(d.mask[:0], l.text...)
		allowed = d.mask
		for i, next := range l.utf[d.utf] {
			allowed[i] = allowed[i] && next != utfBad
		}
		allowed[l.end], allowed[l.eos] = d.utf == utfAccept, d.utf == utfAccept
	}
	allowed[l.call] = d.callsAllowed()
	id := d.sampler.Sample(d.logits, allowed)
	switch id {
	case -1:
		return openai.FinishStop, nil
	case l.end, l.eos:
		return openai.FinishStop, nil
	case l.call:
		return "", d.startCall()
	}
	piece := l.m.Tok.Piece(id)
	if d.matcher != nil && !d.matcher.AdvanceBytes(piece) {
		return "", fmt.Errorf("decode: token %d left the schema", id) // the mask allowed it: a bug
	}
	if d.matcher == nil {
		d.utf = l.utf[d.utf][id]
	}
	d.addText(piece)
	if cut, ok := d.stopAt(); ok {
		d.content = d.content[:cut]
		d.generated++
		return openai.FinishStop, d.flushText(true)
	}
	if err := d.flushText(false); err != nil {
		return "", err
	}
	if d.matcher != nil && d.matcher.Done() {
		d.generated++
		return openai.FinishStop, nil
	}
	return "", d.feed([]int{id})
}

func (d *decoder) addText(b []byte) {
	d.content = append(d.content, b...)
	d.anyText = true
}

// stopAt finds the earliest stop sequence in the content.
func (d *decoder) stopAt() (int, bool) {
	cut, ok := len(d.content), false
	for _, s := range d.r.stops {
		if i := strings.Index(string(d.content), s); i >= 0 && i < cut {
			cut, ok = i, true
		}
	}
	return cut, ok
}

// startCall feeds the call marker; the call's JSON is then sampled under r.call.
func (d *decoder) startCall() error {
	d.phase, d.matcher = phCall, d.r.call.Start()
	d.callBuf, d.argStart, d.argSent = d.callBuf[:0], 0, 0
	return d.feed([]int{d.l.call})
}

// callPrefix is how every call begins; the matcher emits properties in schema order.
const callPrefix = `{"name":"`

func (d *decoder) stepCall() (string, error) {
	l := d.l
	if !d.matcher.Accepting() {
		if comp := d.matcher.Completion(); len(l.m.Tok.Encode(comp)) >= d.left() {
			d.generated += len(l.m.Tok.Encode(comp))
			return openai.FinishLength, d.addCall(comp)
		}
	}
	d.mask = l.masker.Allowed(d.matcher, d.mask)
	id := d.sampler.Sample(d.logits, d.mask)
	if id < 0 {
		return "", errors.New("decode: no token continues the tool call") // the schema compiler prunes dead ends: a bug
	}
	piece := l.m.Tok.Piece(id)
	if !d.matcher.AdvanceBytes(piece) {
		return "", fmt.Errorf("decode: token %d left the tool-call schema", id)
	}
	if err := d.addCall(piece); err != nil {
		return "", err
	}
	if d.matcher.Done() {
		d.phase = phAfter
		return "", d.feed([]int{id, l.callE})
	}
	return "", d.feed([]int{id})
}

// addCall appends bytes of the call's JSON: once the name is complete the call is opened and
// streamed, and the arguments follow as they come, always less the last byte, which may be (and
// in the end is) the call's closing brace.
func (d *decoder) addCall(b []byte) error {
	d.callBuf = append(d.callBuf, b...)
	if d.argStart == 0 {
		const mid = `","arguments":`
		i := bytes.Index(d.callBuf, []byte(mid))
		if i < 0 {
			return nil
		}
		var name string
		if err := json.Unmarshal(d.callBuf[len(callPrefix)-1:i+1], &name); err != nil {
			return fmt.Errorf("decode: tool name in %q: %w", d.callBuf, err)
		}
		d.argStart, d.argSent = i+len(mid), i+len(mid)
		if err := d.openCall(name); err != nil {
			return err
		}
	}
	end := len(d.callBuf) - 1 // hold back what may be the closing brace
	if end <= d.argSent {
		return nil
	}
	args := d.callBuf[d.argSent:end]
	d.argSent = end
	c := &d.calls[len(d.calls)-1]
	c.Function.Arguments += string(args)
	return d.send(openai.ChunkDelta{ToolCalls: []openai.ToolCallDelta{{Index: len(d.calls) - 1,
		Function: openai.FunctionCallDelta{Arguments: string(args)}}}}, "")
}

// openCall records a new call and streams its id and name.
func (d *decoder) openCall(name string) error {
	id := fmt.Sprintf("call_%s", randomID())
	d.calls = append(d.calls, openai.ToolCall{ID: id, Type: "function", Function: openai.FunctionCall{Name: name}})
	return d.send(openai.ChunkDelta{ToolCalls: []openai.ToolCallDelta{{Index: len(d.calls) - 1, ID: id, Type: "function",
		Function: openai.FunctionCallDelta{Name: name}}}}, "")
}

// rebaseRefs rewrites a schema's "$ref": "#…" pointers to point under base, keeping every key
// in its order (the matcher emits properties in schema order). Absent parameters take none.
func rebaseRefs(raw json.RawMessage, base string) ([]byte, error) {
	if t := bytes.TrimSpace(raw); len(t) == 0 || string(t) == "null" {
		return []byte(`{"type":"object","properties":{},"additionalProperties":false}`), nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out bytes.Buffer
	if err := rebaseValue(dec, &out, base, false); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func rebaseValue(dec *json.Decoder, out *bytes.Buffer, base string, isRef bool) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case json.Delim:
		closing := byte('}')
		if t == '[' {
			closing = ']'
		}
		out.WriteByte(byte(t))
		for n := 0; dec.More(); n++ {
			if n > 0 {
				out.WriteByte(',')
			}
			ref := false
			if t == '{' {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key, _ := k.(string)
				kb, _ := json.Marshal(key)
				out.Write(kb)
				out.WriteByte(':')
				ref = key == "$ref"
			}
			if err := rebaseValue(dec, out, base, ref); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return err
		}
		out.WriteByte(closing)
	case string:
		if isRef && strings.HasPrefix(t, "#") {
			t = base + t[1:]
		}
		b, _ := json.Marshal(t)
		out.Write(b)
	case json.Number:
		out.WriteString(t.String())
	default:
		b, _ := json.Marshal(t)
		out.Write(b)
	}
	return nil
}

// A UTF-8 validator as a DFA over bytes (RFC 3629): the state says how many continuation bytes
// are due and, for the first of them, which range excludes overlong forms and surrogates.
const (
	utfAccept = iota
	utfCont1  // one continuation byte due
	utfCont2  // two due
	utfCont3  // three due
	utfE0     // after E0: A0..BF, then one more
	utfED     // after ED: 80..9F, then one more
	utfF0     // after F0: 90..BF, then two more
	utfF4     // after F4: 80..8F, then two more
	utfStates
	utfBad = 0xFF
)

// utfStep is the state after byte b, or utfBad.
func utfStep(st uint8, b byte) uint8 {
	in := func(lo, hi byte) bool { return b >= lo && b <= hi }
	switch st {
	case utfAccept:
		switch {
		case b < 0x80:
			return utfAccept
		case in(0xC2, 0xDF):
			return utfCont1
		case b == 0xE0:
			return utfE0
		case b == 0xED:
			return utfED
		case in(0xE1, 0xEF):
			return utfCont2
		case b == 0xF0:
			return utfF0
		case b == 0xF4:
			return utfF4
		case in(0xF1, 0xF3):
			return utfCont3
		}
	case utfCont1, utfCont2, utfCont3:
		if in(0x80, 0xBF) {
			return st - 1
		}
	case utfE0:
		if in(0xA0, 0xBF) {
			return utfCont1
		}
	case utfED:
		if in(0x80, 0x9F) {
			return utfCont1
		}
	case utfF0:
		if in(0x90, 0xBF) {
			return utfCont2
		}
	case utfF4:
		if in(0x80, 0x8F) {
			return utfCont2
		}
	}
	return utfBad
}

// utfRun runs the bytes of a token from st.
func utfRun(st uint8, bs []byte) uint8 {
	for _, b := range bs {
		if st = utfStep(st, b); st == utfBad {
			return utfBad
		}
	}
	return st
}
