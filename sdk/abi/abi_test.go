package abi

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestPack_RoundTrip(t *testing.T) {
	for _, c := range [][2]uint32{{0, 0}, {1, 2}, {0xffffffff, 0xffffffff}, {0x10000, 7}} {
		p, n := Unpack(Pack(c[0], c[1]))
		if p != c[0] || n != c[1] {
			t.Errorf("Pack(%d,%d) round trip = %d,%d", c[0], c[1], p, n)
		}
	}
}

func TestStatus_Codes(t *testing.T) {
	for s := StatusOK; s <= maxStatus; s++ {
		if StatusOf(s.Code()) != s && s != StatusOK {
			t.Errorf("StatusOf(%d) = %v, want %v", s.Code(), StatusOf(s.Code()), s)
		}
		if s.String() == "unknown" || s.String() == "" {
			t.Errorf("status %d has no name", s)
		}
	}
	if StatusOf(-1000) != ErrInternal || StatusOf(5) != StatusOK {
		t.Error("out-of-range statuses misread")
	}
}

func TestHostFuncs_EveryCapabilityKnown(t *testing.T) {
	for _, name := range HostFuncNames() {
		hf := HostFuncs[name]
		if hf.Name != name || !hf.Capability.Known() || len(hf.Sig.Results) != 1 {
			t.Errorf("host function %q malformed: %+v", name, hf)
		}
	}
}

func validInfo() *ModuleInfo {
	return &ModuleInfo{
		Exports: []Export{
			{ExportVersionMarker, RequiredExports[ExportVersionMarker]},
			{ExportAlloc, RequiredExports[ExportAlloc]},
			{ExportManifest, RequiredExports[ExportManifest]},
			{ExportCall, RequiredExports[ExportCall]},
		},
		Imports: []Import{
			{HostModule, FnLog, HostFuncs[FnLog].Sig},
			{HostModule, FnTaskSubmit, HostFuncs[FnTaskSubmit].Sig},
			{WASIModule, "fd_write", Signature{Params: []ValType{I32, I32, I32, I32}, Results: []ValType{I32}}},
		},
	}
}

func TestCheckShape(t *testing.T) {
	if err := CheckShape(validInfo()); err != nil {
		t.Fatalf("valid module refused: %v", err)
	}
	cases := []struct {
		name string
		mod  func(*ModuleInfo)
		want string
	}{
		{"no marker", func(m *ModuleInfo) { m.Exports = m.Exports[1:] }, "not a Lumen module"},
		{"other version", func(m *ModuleInfo) { m.Exports[0].Name = "lumen_abi_v2" }, "ABI v2; this host speaks ABI v1"},
		{"missing alloc", func(m *ModuleInfo) { m.Exports = append(m.Exports[:1], m.Exports[2:]...) }, `missing export "lumen_alloc"`},
		{"wrong call type", func(m *ModuleInfo) {
			m.Exports[3].Sig = Signature{Params: []ValType{I32, I32}, Results: []ValType{I64}}
		}, `export "lumen_call" has type (i32, i32) -> (i64), want (i32, i32, i32) -> (i64)`},
		{"unknown module", func(m *ModuleInfo) { m.Imports = append(m.Imports, Import{"env", "foo", Signature{}}) }, `import env.foo: module "env" is not provided`},
		{"unknown lumen fn", func(m *ModuleInfo) { m.Imports = append(m.Imports, Import{HostModule, "spawn_shell", Signature{}}) }, "import lumen.spawn_shell is not a host function"},
		{"wrong import type", func(m *ModuleInfo) { m.Imports[0].Sig = Signature{Params: []ValType{I32}} }, "import lumen.log has type (i32) -> (), want (i32, i32, i32) -> (i32)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mi := validInfo()
			c.mod(mi)
			err := CheckShape(mi)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestCheckCapabilities_NamesImportAndCapability(t *testing.T) {
	mi := validInfo()
	m := &Manifest{ABI: 1}
	err := CheckCapabilities(mi, m)
	if err == nil || !strings.Contains(err.Error(), `import lumen.task_submit needs capability "tasks"`) {
		t.Fatalf("err = %v", err)
	}
	m.Capabilities = []Capability{CapTasks}
	if err := CheckCapabilities(mi, m); err != nil {
		t.Fatal(err)
	}
	if got := RequiredCapabilities(mi); len(got) != 1 || got[0] != CapTasks {
		t.Fatalf("RequiredCapabilities = %v", got)
	}
}

func TestDecodeManifest(t *testing.T) {
	good := `{"abi":1,"functions":[{"name":"add","kind":"task"},{"name":"C","kind":"actor"},{"name":"C.incr","kind":"method","actor":"C"}],"capabilities":["tasks"]}`
	m, err := DecodeManifest([]byte(good))
	if err != nil || m.Index("C.incr") != 2 {
		t.Fatalf("good manifest: %v %v", m, err)
	}
	bad := map[string]string{
		`{"abi":2,"functions":[]}`: "abi is 2",
		`{"abi":1,"functions":[{"name":"a","kind":"task"},{"name":"a","kind":"task"}]}`:                  "duplicate function name",
		`{"abi":1,"functions":[{"name":"a","kind":"job"}]}`:                                              `unknown kind "job"`,
		`{"abi":1,"functions":[{"name":"X.m","kind":"method","actor":"X"}]}`:                             `method of unknown actor "X"`,
		`{"abi":1,"functions":[{"name":"a b","kind":"task"}]}`:                                           "has character ' '",
		`{"abi":1,"functions":[],"capabilities":["root"]}`:                                               `unknown capability "root"`,
		`{"abi":1,"functions":[],"extra":1}`:                                                             "unknown field",
		`{"abi":1,"functions":[]} {}`:                                                                    "trailing data",
		`{"abi":1,"functions":[{"name":"a","kind":"task","input":"xml"}]}`:                               `unknown encoding "xml"`,
		`{"abi":1,"functions":[],"resources":{"cpu":-1}}`:                                                "not a non-negative amount",
		`{"abi":1,"functions":[{"name":"C","kind":"actor"},{"name":"D.m","kind":"method","actor":"C"}]}`: `must be "C.<method>"`,
	}
	for in, want := range bad {
		if _, err := DecodeManifest([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("DecodeManifest(%s) = %v, want %q", in, err, want)
		}
	}
}

func TestDecodeRequests(t *testing.T) {
	if r, err := DecodeTaskRequest([]byte(`{"function":"add","args":{"a":1},"refs":[3]}`)); err != nil || string(r.Args) != `{"a":1}` {
		t.Fatalf("task request: %+v %v", r, err)
	}
	bad := []struct {
		dec      func([]byte) error
		in, want string
	}{
		{taskDec, `{"function":""}`, "empty name"},
		{taskDec, `{"function":"f","args":1,"args_bytes":"AA=="}`, "both args and args_bytes"},
		{taskDec, `{"function":"f","max_retries":-1}`, "max_retries -1"},
		{taskDec, `{"function":"f","refs":[0]}`, "handle 0 is not positive"},
		{waitDec, `{"handles":[1,2],"num_returns":3}`, "num_returns 3 outside 1..2"},
		{waitDec, `{"handles":[],"num_returns":0}`, "num_returns 0"},
		{actorDec, `{"actor":"C","max_restarts":-2}`, "max_restarts -2"},
		{callDec, `{"actor":0,"method":"m"}`, "actor handle 0"},
		{callDec, "\xff", "not valid UTF-8"},
	}
	for _, c := range bad {
		if err := c.dec([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("decode %s = %v, want %q", c.in, err, c.want)
		}
	}
}

func taskDec(b []byte) error  { _, err := DecodeTaskRequest(b); return err }
func waitDec(b []byte) error  { _, err := DecodeWaitRequest(b); return err }
func actorDec(b []byte) error { _, err := DecodeActorCreateRequest(b); return err }
func callDec(b []byte) error  { _, err := DecodeActorCallRequest(b); return err }

func TestDecodeGuestError(t *testing.T) {
	cases := map[string]Error{
		`{"code":"E1","message":"bad"}`: {Kind: KindGuest, Code: "E1", Message: "bad"},
		`plain words`:                   {Kind: KindGuest, Message: "plain words"},
		`{"kind":"trap","message":"x"}`: {Kind: KindGuest, Message: "x"},
		"":                              {Kind: KindGuest, Message: "guest reported an error without a message"},
		"\xff\xfe":                      {Kind: KindGuest, Message: "\uFFFD"},
	}
	for in, want := range cases {
		if got := DecodeGuestError([]byte(in)); *got != want {
			t.Errorf("DecodeGuestError(%q) = %+v, want %+v", in, *got, want)
		}
	}
}

// The decoders read bytes a guest controls: they must never panic, and whatever they accept
// must re-encode and decode to the same value.
func FuzzDecodeManifest(f *testing.F) {
	f.Add([]byte(`{"abi":1,"functions":[{"name":"add","kind":"task"},{"name":"C","kind":"actor"},{"name":"C.incr","kind":"method","actor":"C"}],"capabilities":["tasks"],"resources":{"cpu":1}}`))
	f.Add([]byte(`{"abi":1,"functions":[]}`))
	f.Add([]byte(`{"abi":1`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeManifest(b)
		if err != nil {
			return
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeManifest(again); err != nil {
			t.Fatalf("accepted manifest does not round-trip: %v\n%s", err, again)
		}
	})
}

func FuzzDecodeRequests(f *testing.F) {
	f.Add([]byte(`{"function":"add","args":{"a":1},"refs":[3],"max_retries":2}`))
	f.Add([]byte(`{"handles":[1,2],"num_returns":1,"timeout_ms":-1}`))
	f.Add([]byte(`{"actor":"C","args":[1],"name":"c","namespace":"ns","max_restarts":-1}`))
	f.Add([]byte(`{"actor":3,"method":"incr","args_bytes":"AAE="}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = DecodeTaskRequest(b)
		_, _ = DecodeWaitRequest(b)
		_, _ = DecodeActorCreateRequest(b)
		_, _ = DecodeActorCallRequest(b)
	})
}

func FuzzDecodeGuestError(f *testing.F) {
	f.Add([]byte(`{"code":"E1","message":"bad"}`))
	f.Add([]byte("plain"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e := DecodeGuestError(b)
		if e.Kind != KindGuest || e.Message == "" {
			t.Fatalf("DecodeGuestError(%q) = %+v", b, e)
		}
	})
}
