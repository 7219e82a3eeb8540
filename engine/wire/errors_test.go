package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
)

func TestKindOf_FindsTheKindThroughWrapsAndJoins(t *testing.T) {
	base := errors.New("disk full")
	sentinel := New(KindNotFound, "no such job")
	cases := []struct {
		err  error
		want Kind
		ok   bool
	}{
		{Wrap(KindStorage, base), KindStorage, true},
		{fmt.Errorf("put: %w", Wrap(KindStorage, base)), KindStorage, true},
		{fmt.Errorf("job j1: %w", sentinel), KindNotFound, true},
		{errors.Join(base, fmt.Errorf("x: %w", sentinel)), KindNotFound, true},
		{base, "", false},
		{nil, "", false},
	}
	for i, c := range cases {
		k, ok := KindOf(c.err)
		if k != c.want || ok != c.ok {
			t.Errorf("case %d: KindOf(%v) = %q, %v; want %q, %v", i, c.err, k, ok, c.want, c.ok)
		}
	}
	if !errors.Is(Wrap(KindStorage, base), base) {
		t.Error("Wrap hides its cause from errors.Is")
	}
	if Wrap(KindBadInput, nil) != nil {
		t.Error("Wrap(nil) is not nil")
	}
}

func TestError_SentinelsSurviveJSON(t *testing.T) {
	sentinel := New(KindConflict, "job has ended")
	b, err := json.Marshal(Body{Error: *sentinel})
	if err != nil {
		t.Fatal(err)
	}
	var got Body
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(fmt.Errorf("stop: %w", &got.Error), sentinel) {
		t.Fatalf("decoded %s does not match its sentinel", b)
	}
	if errors.Is(&got.Error, New(KindConflict, "job id taken")) {
		t.Fatal("two sentinels of one kind match each other")
	}
}

func TestStatus_EveryKindHasOneStatus(t *testing.T) {
	for k, s := range statuses {
		if s < 200 || s > 599 {
			t.Errorf("%s: status %d", k, s)
		}
	}
	if Kind("from_a_newer_peer").Status() != http.StatusInternalServerError {
		t.Error("an unknown kind is not a 500")
	}
	for _, s := range []int{400, 401, 403, 404, 409, 410, 413, 421, 503, 504} {
		if got := KindOfStatus(s).Status(); got != s {
			t.Errorf("KindOfStatus(%d).Status() = %d", s, got)
		}
	}
}
