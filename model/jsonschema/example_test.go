package jsonschema_test

import (
	"fmt"

	"github.com/lumenflow/lumen/model/jsonschema"
)

func ExampleCompile_errorPointer() {
	_, err := jsonschema.Compile([]byte(`{"type":"object","properties":{"city":{"type":"strin"}}}`))
	fmt.Println(err)
	// Output: jsonschema: #/properties/city/type: unknown type "strin"
}

func ExampleMatcher() {
	s, _ := jsonschema.Compile([]byte(`{"type":"object","properties":{"ok":{"type":"boolean"}},"required":["ok"],"additionalProperties":false}`))
	m := s.Start()
	fmt.Println(m.AdvanceBytes([]byte(`{"ok":`)), m.Accepting())
	fmt.Println(m.Clone().Advance('1')) // not a boolean: refused, m unchanged
	fmt.Printf("%s\n", m.Completion())
	// Output:
	// true false
	// false
	// true}
}

func ExampleMasker() {
	vocab := [][]byte{[]byte(`{"`), []byte(`ok`), []byte(`":`), []byte(`true`), []byte(`}`), []byte(`tru`), nil}
	s, _ := jsonschema.Compile([]byte(`{"type":"object","properties":{"ok":{"type":"boolean"}},"required":["ok"],"additionalProperties":false}`))
	k := jsonschema.NewMasker(vocab)
	m := s.Start()
	m.AdvanceBytes([]byte(`{"ok":`))
	allowed := k.Allowed(m, nil)
	for i, ok := range allowed {
		if ok {
			fmt.Printf("%q\n", vocab[i])
		}
	}
	// Output:
	// "true"
	// "tru"
}
