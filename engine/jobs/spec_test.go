package jobs

import (
	"encoding/json"
	"testing"
)

// FuzzJobRequest feeds ParseJobSpec arbitrary bodies: it never panics, and a body it accepts
// is a valid submission that reads back the same after encoding.
func FuzzJobRequest(f *testing.F) {
	for _, s := range []string{
		`{"entrypoint":{"module":"svc","function":"square","args":3}}`,
		`{"submission_id":"j-1","namespace":"ns.a","metadata":{"a":"b"},"entrypoint":{"module":"svc@1.0.0","function":"f","grants":["objects"]}}`,
		`{"entrypoint":{"workflow":{"version":1,"name":"w","steps":[{"id":"a","module":"m","function":"f"}]}}}`,
		`{"entrypoint":{"workflow":null,"module":"m","function":"f"}}`,
		`{"submission_id":"default","entrypoint":{"module":"m","function":"f"}}`,
		`{"entrypoint":{"module":"m","function":"f","args":{"x":[1,2,{"y":null}]}}}`,
		`{"metadata":{"":"x"},"entrypoint":{"module":"m","function":"f"}}`,
		`{"entrypoint":{"module":"m","function":"f"}} {}`,
		`{"entrypoint":{"workflow":"  {}"}}`,
		``, `null`, `[]`, `{"entrypoint":{"module":"\u0000","function":"f"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		spec, err := ParseJobSpec(b)
		if err != nil {
			if spec != nil {
				t.Fatalf("an error and a spec: %v", err)
			}
			return
		}
		if err := spec.Validate(); err != nil {
			t.Fatalf("accepted %q, yet invalid: %v", b, err)
		}
		again, err := json.Marshal(spec)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseJobSpec(again)
		if err != nil {
			t.Fatalf("accepted %q, but not its encoding %s: %v", b, again, err)
		}
		if back.SubmissionID != spec.SubmissionID || back.Namespace != spec.Namespace || back.Entrypoint.Module != spec.Entrypoint.Module ||
			back.Entrypoint.Function != spec.Entrypoint.Function || len(back.Metadata) != len(spec.Metadata) {
			t.Fatalf("round trip of %q: %+v became %+v", b, spec, back)
		}
	})
}
