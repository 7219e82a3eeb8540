package model

import (
	"encoding/json"
	"fmt"
	"image"
)

// Roles of chat messages.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
	RoleTool      = "tool"
)

// Part is one piece of a message's content: text, a decoded image or 16 kHz audio samples.
type Part struct {
	Text  string
	Image image.Image
	Audio []float32
}

// ToolCall is a call the assistant makes: the tool's name and its arguments as JSON.
type ToolCall struct {
	ID        string
	Name      string
	Arguments json.RawMessage
}

// Tool is a function the assistant may call; Parameters is its JSON Schema.
type Tool struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
}

// Message is one chat message.
type Message struct {
	Role      string
	Parts     []Part
	ToolCalls []ToolCall
}

// TextMessage is a message with one text part.
func TextMessage(role, text string) Message { return Message{Role: role, Parts: []Part{{Text: text}}} }

// Template renders chat messages to the model's input stream:
//
//	<|bos|> [<|tools|> [{"name":…,"description":…,"parameters":…},…] <|end|>]
//	then per message: <|role|> content <|end|>
//
// where content is text tokens, <|image|> patches <|/image|>, <|audio|> frame groups <|/audio|>,
// and for each tool call <|tool_call|>{"name":…,"arguments":…}<|/tool_call|>. A prompt ends with
// <|assistant|>, after which the model writes its reply and <|end|>.
type Template struct {
	Tok *Tokenizer
	Cfg Config
}

func (tp Template) special(name string) Item { return Item{Mod: Text, Token: tp.Tok.Special(name)} }

func (tp Template) text(s string) []Item {
	ids := tp.Tok.Encode([]byte(s))
	out := make([]Item, len(ids))
	for i, id := range ids {
		out[i] = Item{Mod: Text, Token: id}
	}
	return out
}

// CallJSON is the text a tool call is written as between the tool-call markers.
func CallJSON(name string, args json.RawMessage) string {
	if len(args) == 0 {
		args = json.RawMessage("{}")
	}
	n, _ := json.Marshal(name)
	return `{"name":` + string(n) + `,"arguments":` + string(args) + `}`
}

// Reply renders an assistant reply's body (text, tool calls) and the closing <|end|>: what the
// model is trained to produce after <|assistant|>.
func (tp Template) Reply(m Message) []Item {
	var out []Item
	for _, p := range m.Parts {
		out = append(out, tp.text(p.Text)...)
	}
	for _, c := range m.ToolCalls {
		out = append(out, tp.special(TokCallStart))
		out = append(out, tp.text(CallJSON(c.Name, c.Arguments))...)
		out = append(out, tp.special(TokCallEnd))
	}
	return append(out, tp.special(TokEnd))
}

// Prompt renders tools and messages and the <|assistant|> that asks for a reply.
func (tp Template) Prompt(tools []Tool, msgs []Message) ([]Item, error) {
	out := []Item{tp.special(TokBOS)}
	if len(tools) > 0 {
		j, err := json.Marshal(tools)
		if err != nil {
			return nil, fmt.Errorf("render tools: %w", err)
		}
		out = append(out, tp.special(TokTools))
		out = append(out, tp.text(string(j))...)
		out = append(out, tp.special(TokEnd))
	}
	for i, m := range msgs {
		var role string
		switch m.Role {
		case RoleSystem:
			role = TokSystem
		case RoleUser:
			role = TokUser
		case RoleAssistant:
			role = TokAssistant
		case RoleTool:
			role = TokTool
		default:
			return nil, fmt.Errorf("render messages[%d].role: %q is not system, user, assistant or tool", i, m.Role)
		}
		out = append(out, tp.special(role))
		if m.Role == RoleAssistant {
			out = append(out, tp.Reply(m)...)
			continue
		}
		for j, p := range m.Parts {
			switch {
			case p.Image != nil:
				out = append(out, tp.special(TokImageStart))
				for _, v := range ImagePatches(p.Image, tp.Cfg.ImageSize, tp.Cfg.Patch) {
					out = append(out, Item{Mod: Image, Vec: v})
				}
				out = append(out, tp.special(TokImageEnd))
			case p.Audio != nil:
				frames := GroupFrames(LogMel(p.Audio, tp.Cfg.Mels), tp.Cfg.FrameGroup)
				if len(frames) == 0 {
					return nil, fmt.Errorf("render messages[%d].content[%d]: empty audio", i, j)
				}
				out = append(out, tp.special(TokAudioStart))
				for _, v := range frames {
					out = append(out, Item{Mod: Audio, Vec: v})
				}
				out = append(out, tp.special(TokAudioEnd))
			default:
				out = append(out, tp.text(p.Text)...)
			}
		}
		out = append(out, tp.special(TokEnd))
	}
	return append(out, tp.special(TokAssistant)), nil
}
