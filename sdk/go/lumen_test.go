package lumen

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/lumenflow/lumen/sdk/abi"
)

type pair struct{ A, B int }
type counter struct{ N int }

var counterType *ActorType[counter]

func init() {
	Task("t_add", func(p pair) (int, error) { return p.A + p.B, nil })
	Task("t_fail", func(p pair) (int, error) { return 0, NewError("E42", "bad pair %d", p.A) })
	Task("t_panic", func(p pair) (int, error) { panic("kaboom") })
	BytesTask("t_echo", func(b []byte) ([]byte, error) { return b, nil })
	counterType = Actor("TCounter", func(start int) (*counter, error) { return &counter{N: start}, nil })
	Method(counterType, "incr", func(c *counter, by int) (int, error) { c.N += by; return c.N, nil })
	SaveLoad(counterType,
		func(c *counter) ([]byte, error) { return json.Marshal(c.N) },
		func(b []byte) (*counter, error) {
			var n int
			err := json.Unmarshal(b, &n)
			return &counter{N: n}, err
		})
	Require(abi.CapObjects)
}

func call(t *testing.T, name, in string) (string, error) {
	t.Helper()
	i, ok := byName[name]
	if !ok {
		t.Fatalf("%s not registered", name)
	}
	out, err := dispatch(uint32(i), []byte(in))
	return string(out), err
}

func TestManifest_ValidAndIndexed(t *testing.T) {
	m := Manifest()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, i := range byName {
		if m.Functions[i].Name != name {
			t.Errorf("index %d is %q, want %q", i, m.Functions[i].Name, name)
		}
	}
	if !m.Requests(abi.CapObjects) || m.Requests(abi.CapTasks) {
		t.Errorf("capabilities = %v", m.Capabilities)
	}
	if i := m.Index("TCounter.__load"); i < 0 || m.Functions[i].Kind != abi.KindMethod {
		t.Errorf("save/load methods missing: %+v", m.Functions)
	}
}

func TestDispatch_TasksAndErrors(t *testing.T) {
	if out, err := call(t, "t_add", `{"A":40,"B":2}`); err != nil || out != "42" {
		t.Fatalf("add = %q, %v", out, err)
	}
	if out, err := call(t, "t_echo", "\x00raw"); err != nil || out != "\x00raw" {
		t.Fatalf("echo = %q, %v", out, err)
	}
	_, err := call(t, "t_fail", `{"A":7}`)
	var e *Error
	if !errors.As(err, &e) || e.Code != "E42" || e.Message != "bad pair 7" {
		t.Fatalf("fail err = %#v", err)
	}
	if g := string(guestErrorJSON(err)); g != `{"code":"E42","message":"bad pair 7"}` {
		t.Errorf("guest error JSON = %s", g)
	}
	_, err = call(t, "t_panic", `{}`)
	if !errors.As(err, &e) || e.Code != "panic" || !strings.Contains(e.Message, "kaboom") {
		t.Fatalf("panic err = %#v", err)
	}
	_, err = call(t, "t_add", `{"A":"x"}`)
	if !errors.As(err, &e) || e.Code != "bad_input" || !strings.Contains(e.Message, "t_add") {
		t.Fatalf("bad input err = %#v", err)
	}
	if _, err := dispatch(uint32(len(entries)), nil); err == nil {
		t.Fatal("out-of-range index did not fail")
	}
}

func TestActor_StateLivesInInstance(t *testing.T) {
	t.Cleanup(func() { actorState, actorType = nil, "" })
	if _, err := call(t, "TCounter.incr", "1"); err == nil {
		t.Fatal("method before constructor succeeded")
	}
	if _, err := call(t, "TCounter", "10"); err != nil {
		t.Fatal(err)
	}
	if _, err := call(t, "TCounter", "10"); err == nil {
		t.Fatal("second constructor on one instance succeeded")
	}
	if out, _ := call(t, "TCounter.incr", "5"); out != "15" {
		t.Fatalf("incr = %s", out)
	}
	saved, err := call(t, "TCounter.__save", "")
	if err != nil || saved != "15" {
		t.Fatalf("save = %q, %v", saved, err)
	}
	actorState = nil
	if _, err := call(t, "TCounter.__load", saved); err != nil {
		t.Fatal(err)
	}
	if out, _ := call(t, "TCounter.incr", "1"); out != "16" {
		t.Fatalf("incr after load = %s", out)
	}
}

func TestRef_TravelsByReference(t *testing.T) {
	raw, refs, err := marshalArgs(map[string]any{"x": Ref{7}, "ys": []Ref{{8}, {9}}})
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != `{"x":{"$ref":7},"ys":[{"$ref":8},{"$ref":9}]}` || len(refs) != 3 {
		t.Fatalf("raw=%s refs=%v", raw, refs)
	}
	var back struct{ X Ref }
	if err := json.Unmarshal([]byte(`{"X":{"$ref":7}}`), &back); err != nil || back.X.Handle() != 7 {
		t.Fatalf("unmarshal = %v %v", back, err)
	}
	for _, bad := range []string{`{"X":{"$ref":0}}`, `{"X":3}`, `{"X":{"ref":1}}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s decoded as a ref", bad)
		}
	}
}

func TestNative_HostFunctionsUnavailable(t *testing.T) {
	if _, err := Put(1); !errors.Is(err, ErrNotUnderLumen) {
		t.Fatalf("Put outside Lumen: %v", err)
	}
	if _, err := Submit("x", nil); !errors.Is(err, ErrNotUnderLumen) {
		t.Fatalf("Submit outside Lumen: %v", err)
	}
	if errors.Is(ErrTimeout, ErrDenied) {
		t.Fatal("distinct sentinels match")
	}
}
