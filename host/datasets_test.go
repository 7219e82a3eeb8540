package host

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/lumenflow/lumen/sdk/abi"
)

// The dataset methods of the fakes. The host treats batches as opaque bytes, so these datasets
// hold byte strings: DatasetOpen takes {"batches": ["...", ...]}, and a batch "bad" is refused
// by DatasetAppend as the engine refuses a malformed one.

func (stubServices) DatasetOpen(context.Context, *CallInfo, []byte) (int64, error) { return 5, nil }
func (stubServices) DatasetNext(_ context.Context, _ *CallInfo, h int64) ([]byte, error) {
	if h == 5 {
		return []byte("batch"), nil
	}
	return nil, nil
}
func (stubServices) DatasetSchema(context.Context, *CallInfo, int64) ([]byte, error) {
	return []byte("schema"), nil
}
func (stubServices) DatasetCreate(context.Context, *CallInfo, []byte) (int64, error) { return 6, nil }
func (stubServices) DatasetAppend(context.Context, *CallInfo, int64, []byte) error   { return nil }
func (stubServices) DatasetFinish(context.Context, *CallInfo, int64) (int64, error)  { return 1, nil }
func (stubServices) DatasetClose(context.Context, *CallInfo, int64) error            { return nil }
func (stubServices) DatasetWrite(context.Context, *CallInfo, int64, []byte) ([]byte, error) {
	return []byte(`{"rows":0,"files":[]}`), nil
}

type testDataset struct {
	job     string
	batches [][]byte
	pos     int
}

// datasetsOf returns s's dataset table, made on first use, with s.mu held by the caller.
func (s *testServices) datasetsLocked() map[int64]*testDataset {
	if s.datasets == nil {
		s.datasets = map[int64]*testDataset{}
	}
	return s.datasets
}

func (s *testServices) dataset(c *CallInfo, h int64) (*testDataset, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.datasetsLocked()[h]
	if d == nil || d.job != c.Job {
		return nil, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("no dataset %d", h)}
	}
	return d, nil
}

func (s *testServices) newDataset(c *CallInfo, batches [][]byte) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	s.datasetsLocked()[s.next] = &testDataset{job: c.Job, batches: batches}
	return s.next
}

func (s *testServices) DatasetOpen(_ context.Context, c *CallInfo, spec []byte) (int64, error) {
	var v struct {
		Batches []string `json:"batches"`
	}
	if err := json.Unmarshal(spec, &v); err != nil {
		return 0, &abi.Error{Kind: abi.KindBadInput, Message: "spec: " + err.Error()}
	}
	var bs [][]byte
	for _, b := range v.Batches {
		bs = append(bs, []byte(b))
	}
	return s.newDataset(c, bs), nil
}

func (s *testServices) DatasetNext(_ context.Context, c *CallInfo, h int64) ([]byte, error) {
	d, err := s.dataset(c, h)
	if err != nil {
		return nil, err
	}
	if d.pos >= len(d.batches) {
		return nil, nil
	}
	d.pos++
	if b := d.batches[d.pos-1]; string(b) != "fail" {
		return b, nil
	}
	return nil, &StatusError{Status: abi.ErrFailed, Message: `{"kind":"bad_input","message":"file a.csv line 3: not a number"}`}
}

func (s *testServices) DatasetSchema(_ context.Context, c *CallInfo, h int64) ([]byte, error) {
	if _, err := s.dataset(c, h); err != nil {
		return nil, err
	}
	return []byte("schema"), nil
}

func (s *testServices) DatasetCreate(_ context.Context, c *CallInfo, _ []byte) (int64, error) {
	return s.newDataset(c, nil), nil
}

func (s *testServices) DatasetAppend(_ context.Context, c *CallInfo, h int64, batch []byte) error {
	d, err := s.dataset(c, h)
	if err != nil {
		return err
	}
	if string(batch) == "bad" {
		return &StatusError{Status: abi.ErrBadPayload, Message: fmt.Sprintf("batch %d: column \"x\" is malformed", len(d.batches))}
	}
	d.batches = append(d.batches, batch)
	return nil
}

func (s *testServices) DatasetFinish(ctx context.Context, c *CallInfo, h int64) (int64, error) {
	d, err := s.dataset(c, h)
	if err != nil {
		return 0, err
	}
	s.DatasetClose(ctx, c, h)
	return s.ObjectPut(ctx, c, slices.Concat(d.batches...))
}

func (s *testServices) DatasetWrite(_ context.Context, c *CallInfo, h int64, sink []byte) ([]byte, error) {
	d, err := s.dataset(c, h)
	if err != nil {
		return nil, err
	}
	return []byte(fmt.Sprintf(`{"rows":%d,"files":[%q]}`, len(d.batches), sink)), nil
}

func (s *testServices) DatasetClose(_ context.Context, c *CallInfo, h int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.datasetsLocked()[h]
	if d == nil || d.job != c.Job {
		return &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("no dataset %d", h)}
	}
	delete(s.datasets, h)
	s.closedDatasets = append(s.closedDatasets, h)
	return nil
}

// openDatasets is how many datasets s holds.
func (s *testServices) openDatasets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.datasets)
}

var dataGrants = Grants{Capabilities: []abi.Capability{abi.CapData}}

// dsCall calls function fn of datasets.wasm and splits its output into k i64s and the rest.
func dsCall(t *testing.T, r *Runtime, m *Module, g Grants, fn string, in []byte, k int) ([]int64, string) {
	t.Helper()
	res, err := r.Call(context.Background(), CallRequest{Module: m, Function: fn, Input: in, Job: "j", Grants: g})
	if err != nil {
		t.Fatalf("%s: %v", fn, err)
	}
	if len(res.Output) < 8*k {
		t.Fatalf("%s: output of %d bytes, want at least %d", fn, len(res.Output), 8*k)
	}
	out := make([]int64, k)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(res.Output[8*i:]))
	}
	return out, string(res.Output[8*k:])
}

func TestDatasets_ReadToTheEndAndClose(t *testing.T) {
	s := newTestServices()
	r := s.start(t, Config{})
	m := compile(t, r, "datasets")
	got, pending := dsCall(t, r, m, dataGrants, "read", []byte(`{"batches": ["one", "three", "fives"]}`), 5)
	if got[0] <= 0 || got[1] != 3 || got[2] != 3+5+5 || got[3] != 0 || got[4] != 0 {
		t.Errorf("open, batches, bytes, last next, close = %v, want [>0 3 13 0 0]", got)
	}
	if pending != "" {
		t.Errorf("pending after the end: %q", pending)
	}
	if n := s.openDatasets(); n != 0 {
		t.Errorf("%d datasets left open", n)
	}
}

// A failing dataset_next is -failed with the engine's error JSON; the dataset the call left open
// is closed by the host when the call ends.
func TestDatasets_FailedNextAndScopeEnd(t *testing.T) {
	s := newTestServices()
	r := s.start(t, Config{})
	m := compile(t, r, "datasets")
	got, pending := dsCall(t, r, m, dataGrants, "read", []byte(`{"batches": ["ok", "fail", "never"]}`), 5)
	if got[1] != 1 || got[3] != abi.ErrFailed.Code() || !strings.Contains(pending, "line 3") {
		t.Errorf("read = %v %q, want one batch then failed naming line 3", got, pending)
	}
	if n := s.openDatasets(); n != 0 {
		t.Errorf("%d datasets left open after the call ended", n)
	}
	got, _ = dsCall(t, r, m, dataGrants, "leave", []byte(`{"batches": ["x"]}`), 1)
	if got[0] <= 0 {
		t.Fatalf("open = %d", got[0])
	}
	if n := s.openDatasets(); n != 0 {
		t.Errorf("%d datasets left open after a call that did not close its own", n)
	}
	s.mu.Lock()
	closed := slices.Contains(s.closedDatasets, got[0])
	s.mu.Unlock()
	if !closed {
		t.Errorf("dataset %d was never closed", got[0])
	}
}

// A handle is the call's own: another call of the same job cannot use it, even while it exists.
func TestDatasets_HandleOfAnotherCallIsNotFound(t *testing.T) {
	s := newTestServices()
	r := s.start(t, Config{})
	m := compile(t, r, "datasets")
	h := s.newDataset(&CallInfo{Job: "j"}, [][]byte{[]byte("secret")})
	in := binary.LittleEndian.AppendUint64(nil, uint64(h))
	got, pending := dsCall(t, r, m, dataGrants, "next", in, 1)
	if got[0] != abi.ErrNotFound.Code() || !strings.Contains(pending, "not open in this call") {
		t.Errorf("next on another call's dataset = %d %q", got[0], pending)
	}
	if d, _ := s.dataset(&CallInfo{Job: "j"}, h); d == nil || d.pos != 0 {
		t.Error("the other call's dataset was read or closed")
	}
}

func TestDatasets_BuildAppendFinish(t *testing.T) {
	s := newTestServices()
	r := s.start(t, Config{})
	m := compile(t, r, "datasets")
	got, pending := dsCall(t, r, m, dataGrants, "build", []byte("rows"), 5)
	if got[0] <= 0 || got[1] != 0 || got[2] != 0 || got[3] <= 0 || got[4] != abi.ErrNotFound.Code() {
		t.Fatalf("create, append, append, finish, append after finish = %v %q", got, pending)
	}
	data, err := s.ObjectGet(context.Background(), nil, got[3], 0)
	if err != nil || string(data) != "rowsrows" {
		t.Errorf("finished object = %q %v", data, err)
	}
	got, _ = dsCall(t, r, m, dataGrants, "build", []byte("bad"), 5)
	if got[1] != abi.ErrBadPayload.Code() || got[2] != abi.ErrBadPayload.Code() || got[3] <= 0 {
		t.Errorf("bad batches: %v, want both appends bad_payload and the dataset still finishing", got)
	}
	if n := s.openDatasets(); n != 0 {
		t.Errorf("%d datasets left open", n)
	}
}

// Pointers outside memory are bad_pointer, unknown handles not_found, and nothing reaches the
// engine for either.
func TestDatasets_WildArguments(t *testing.T) {
	s := newTestServices()
	r := s.start(t, Config{})
	m := compile(t, r, "datasets")
	got, _ := dsCall(t, r, m, dataGrants, "wild", nil, 5)
	want := []int64{abi.ErrBadPointer.Code(), got[1], abi.ErrBadPointer.Code(), abi.ErrNotFound.Code(), abi.ErrNotFound.Code()}
	if got[1] <= 0 || !slices.Equal(got, want) {
		t.Errorf("wild = %v, want %v", got, want)
	}
	if n := s.openDatasets(); n != 0 {
		t.Errorf("%d datasets left open", n)
	}
}

func TestDatasets_OpenHandlesAreCapped(t *testing.T) {
	s := newTestServices()
	r := s.start(t, Config{})
	m := compile(t, r, "datasets")
	got, pending := dsCall(t, r, m, dataGrants, "many", nil, 2)
	if got[0] != MaxOpenDatasets || got[1] != abi.ErrLimit.Code() || !strings.Contains(pending, "open datasets") {
		t.Errorf("many = %v %q, want %d then limit", got, pending, MaxOpenDatasets)
	}
	if n := s.openDatasets(); n != 0 {
		t.Errorf("%d datasets left open", n)
	}
}

// Without the data capability the module is refused before it runs, naming the capability.
func TestDatasets_DeniedWithoutTheCapability(t *testing.T) {
	s := newTestServices()
	r := s.start(t, Config{})
	m := compile(t, r, "datasets")
	_, err := r.Call(context.Background(), CallRequest{Module: m, Function: "read", Input: []byte(`{}`), Job: "j", Grants: allEngineGrants})
	if err == nil || !strings.Contains(err.Error(), `"data"`) {
		t.Errorf("call without data: %v", err)
	}
}

func compile(t *testing.T, r *Runtime, name string) *Module {
	t.Helper()
	m, err := r.Compile(context.Background(), testWasm(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// dataset_write needs fs besides data: the directories it writes to are fs's grants.
func TestDatasets_WriteNeedsTheFSCapability(t *testing.T) {
	s := newTestServices()
	r := s.start(t, Config{})
	m := compile(t, r, "datasets")
	got, pending := dsCall(t, r, m, dataGrants, "write", []byte(`{"write_csv": "/out/x"}`), 1)
	if got[0] != abi.ErrDenied.Code() || !strings.Contains(pending, `"fs"`) {
		t.Errorf("write without fs = %d %q", got[0], pending)
	}
	withFS := Grants{Capabilities: []abi.Capability{abi.CapData, abi.CapFS}}
	got, pending = dsCall(t, r, m, withFS, "write", []byte(`{"write_csv": "/out/x"}`), 1)
	if want := `{"rows":0,"files":["{\"write_csv\": \"/out/x\"}"]}`; got[0] != int64(len(want)) || pending != want {
		t.Errorf("write with fs = %d %q, want %q", got[0], pending, want)
	}
	if n := s.openDatasets(); n != 0 {
		t.Errorf("%d datasets left open", n)
	}
}
