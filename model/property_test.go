package model

import (
	"encoding/json"
	"fmt"
	"testing"

	"pgregory.net/rapid"

	"github.com/lumenflow/lumen/model/jsonschema"
)

// genSchema draws a strict-mode schema: objects with every property required and
// additionalProperties false, arrays, enums, consts, anyOf and the scalar types, nested up to
// depth levels.
func genSchema(t *rapid.T, depth int, label string) map[string]any {
	kinds := []string{"string", "integer", "number", "boolean", "null", "enum", "const"}
	if depth > 0 {
		kinds = append(kinds, "object", "array", "anyOf", "nullable")
	}
	switch k := rapid.SampledFrom(kinds).Draw(t, label+".kind"); k {
	case "enum":
		n := rapid.IntRange(1, 3).Draw(t, label+".n")
		vals := make([]any, n)
		for i := range vals {
			vals[i] = fmt.Sprintf("v%d", i)
		}
		return map[string]any{"type": "string", "enum": vals}
	case "const":
		return map[string]any{"const": rapid.SampledFrom([]any{"yes", 7.0, true}).Draw(t, label+".const")}
	case "object":
		n := rapid.IntRange(0, 3).Draw(t, label+".props")
		props, req := map[string]any{}, []string{}
		for i := 0; i < n; i++ {
			name := fmt.Sprintf("p%d", i)
			props[name] = genSchema(t, depth-1, label+"."+name)
			req = append(req, name)
		}
		return map[string]any{"type": "object", "properties": props, "required": req, "additionalProperties": false}
	case "array":
		return map[string]any{"type": "array", "items": genSchema(t, depth-1, label+".items")}
	case "anyOf":
		return map[string]any{"anyOf": []any{genSchema(t, depth-1, label+".a"), genSchema(t, depth-1, label+".b")}}
	case "nullable":
		return map[string]any{"type": []any{rapid.SampledFrom([]string{"string", "integer", "boolean"}).Draw(t, label+".t"), "null"}}
	default:
		return map[string]any{"type": k}
	}
}

// TestLocal_GeneratedSchemasAlwaysValidate decodes noise from an untrained model under many
// generated response_format schemas, with tight and loose token budgets: every output must
// parse and validate.
func TestLocal_GeneratedSchemasAlwaysValidate(t *testing.T) {
	l := randomLocal(t, LocalConfig{})
	outer := t
	rapid.Check(t, func(t *rapid.T) {
		root := genSchema(t, 3, "root")
		if root["type"] != "object" { // response_format wants an object at the top
			root = map[string]any{"type": "object", "properties": map[string]any{"answer": root}, "required": []string{"answer"}, "additionalProperties": false}
		}
		sj, _ := json.Marshal(root)
		s, err := jsonschema.Compile(sj)
		if err != nil {
			t.Fatalf("generated schema %s: %v", sj, err)
		}
		req, _ := json.Marshal(map[string]any{"model": "lumen-mm", "seed": rapid.Int64Range(0, 1<<30).Draw(t, "seed"),
			"max_tokens": rapid.IntRange(4, 64).Draw(t, "max_tokens"), "temperature": 1.3,
			"messages":        []map[string]any{{"role": "user", "content": "go"}},
			"response_format": map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "gen", "strict": true, "schema": json.RawMessage(sj)}}})
		c := complete(outer, l, string(req))
		out := *c.Choices[0].Message.Content
		if testing.Verbose() {
			t.Logf("%s -> %s (%s, %d tokens)", sj, out, c.Choices[0].FinishReason, c.Usage.CompletionTokens)
		}
		if err := s.Validate([]byte(out)); err != nil {
			t.Fatalf("schema %s: output %s: %v", sj, out, err)
		}
	})
}
