package jobs

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/lumenflow/lumen/sdk/abi"
)

// TestValidate_NamesTheFieldAtFault checks each way a submission can be wrong is refused with
// the field named, and that the valid shapes pass.
func TestValidate_NamesTheFieldAtFault(t *testing.T) {
	meta := map[string]string{}
	for i := range MaxJobMetadata + 1 {
		meta[strings.Repeat("k", i+1)] = "v"
	}
	cases := []struct {
		name string
		spec JobSpec
		want string // "" for valid
	}{
		{"a task", JobSpec{Entrypoint: JobEntrypoint{Module: "svc@1.0.0", Function: "square", Args: json.RawMessage("3")}}, ""},
		{"a workflow", JobSpec{SubmissionID: "wf-1", Namespace: "etl.a", Entrypoint: JobEntrypoint{Workflow: json.RawMessage(`{"version":1}`)}}, ""},
		{"nothing to run", JobSpec{}, "entrypoint"},
		{"both", JobSpec{Entrypoint: JobEntrypoint{Workflow: json.RawMessage(`{}`), Module: "m", Function: "f"}}, "not both"},
		{"no function", JobSpec{Entrypoint: JobEntrypoint{Module: "m"}}, "entrypoint.function"},
		{"a workflow that is not an object", JobSpec{Entrypoint: JobEntrypoint{Workflow: json.RawMessage(`[1]`)}}, "entrypoint.workflow"},
		{"args not JSON", JobSpec{Entrypoint: JobEntrypoint{Module: "m", Function: "f", Args: json.RawMessage(`{`)}}, "entrypoint.args"},
		{"an empty grant", JobSpec{Entrypoint: JobEntrypoint{Module: "m", Function: "f", Grants: []abi.Capability{abi.CapObjects, ""}}}, "entrypoint.grants[1]"},
		{"an id with a slash", JobSpec{SubmissionID: "a/b", Entrypoint: JobEntrypoint{Module: "m", Function: "f"}}, "submission_id"},
		{"the default scope as an id", JobSpec{SubmissionID: "default", Entrypoint: JobEntrypoint{Module: "m", Function: "f"}}, `"default"`},
		{"a long namespace", JobSpec{Namespace: strings.Repeat("n", MaxNamespaceLen+1), Entrypoint: JobEntrypoint{Module: "m", Function: "f"}}, "namespace"},
		{"a namespace starting with a dot", JobSpec{Namespace: ".x", Entrypoint: JobEntrypoint{Module: "m", Function: "f"}}, "namespace"},
		{"too much metadata", JobSpec{Metadata: meta, Entrypoint: JobEntrypoint{Module: "m", Function: "f"}}, "metadata"},
		{"a long metadata value", JobSpec{Metadata: map[string]string{"k": strings.Repeat("v", MaxMetadataValLen+1)}, Entrypoint: JobEntrypoint{Module: "m", Function: "f"}}, `metadata["k"]`},
	}
	for _, c := range cases {
		err := c.spec.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want an error naming %s", c.name, err, c.want)
		}
	}
}
