package wire

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/lumenflow/lumen/sdk/abi"
)

func TestParseRefs_ReadsWhatFormatRefsWrites(t *testing.T) {
	got, err := ParseRefs("3, 12,7")
	if err != nil || len(got) != 3 || got[0] != 3 || got[1] != 12 || got[2] != 7 {
		t.Fatalf("ParseRefs = %v, %v", got, err)
	}
	if FormatRefs(got) != "3,12,7" {
		t.Errorf("FormatRefs = %q", FormatRefs(got))
	}
	if refs, err := ParseRefs(""); err != nil || refs != nil || FormatRefs(nil) != "" {
		t.Errorf("no refs: %v %v", refs, err)
	}
	for _, bad := range []string{"x", "1,,2", "0", "-4", "1;2", strings.Repeat("1,", maxRefs) + "1"} {
		if _, err := ParseRefs(bad); err == nil {
			t.Errorf("ParseRefs(%.20q) accepted", bad)
		}
	}
}

func TestActorOwner_CheckRefusesAnIncompleteOwner(t *testing.T) {
	good := ActorOwner{Node: "n1", Handle: 42, Boot: "ab12"}
	if err := good.Check(); err != nil || good.String() != "n1/42/ab12" {
		t.Fatalf("%v: %v", good, err)
	}
	for _, bad := range []ActorOwner{{}, {Node: "n1"}, {Node: "n1", Handle: 42}, {Handle: 42, Boot: "b"},
		{Node: "n1", Boot: "b"}, {Node: "n1", Handle: -3, Boot: "b"}, {Node: "n1/x", Handle: 1, Boot: "b"}} {
		err := bad.Check()
		if k, _ := KindOf(err); k != KindBadInput || !strings.Contains(err.Error(), "actor owner") {
			t.Errorf("%+v: %v, want a bad_input naming the owner", bad, err)
		}
	}
}

func TestPlacedTask_CheckHoldsPeersToTheABIsRules(t *testing.T) {
	valid := func() PlacedTask {
		return PlacedTask{Task: abi.TaskRequest{Module: "sha256-ab", Function: "square", Args: json.RawMessage("4")}, Owner: "s1", Applied: 7}
	}
	if tk := valid(); tk.Check() != nil {
		t.Fatalf("a valid task refused: %v", tk.Check())
	}
	for name, change := range map[string]func(*PlacedTask){
		"no module":            func(p *PlacedTask) { p.Task.Module = "" },
		"no owner":             func(p *PlacedTask) { p.Owner = "" },
		"no function":          func(p *PlacedTask) { p.Task.Function = "" },
		"args twice":           func(p *PlacedTask) { p.Task.ArgsBytes = []byte("x") },
		"bundle without group": func(p *PlacedTask) { p.BundleIndex = 2 },
		"negative bundle":      func(p *PlacedTask) { p.PlacementGroup, p.BundleIndex = "g", -1 },
		"negative ref":         func(p *PlacedTask) { p.Task.Refs = []int64{-1} },
	} {
		tk := valid()
		change(&tk)
		if k, _ := KindOf(tk.Check()); k != KindBadInput {
			t.Errorf("%s: %v, want bad_input", name, tk.Check())
		}
	}
}

func TestPeerMessages_RoundTripThroughJSON(t *testing.T) {
	two := 2
	msgs := []any{
		&PlacedTask{Task: abi.TaskRequest{Module: "m", Function: "f", Refs: []int64{4}, MaxRetries: &two}, Job: "j", Grants: []abi.Capability{abi.CapObjects},
			PlacementGroup: "g", BundleIndex: 1, RemoteRefs: []RemoteRef{{Ref: 4, Node: "w1", API: "http://w1", Handle: 9, Job: "j", Size: 3, Checksum: "00ff00ff"}}, Owner: "s1", Applied: 12},
		&PlacedActor{Actor: abi.ActorCreateRequest{Module: "m", Actor: "Counter", MaxRestarts: 2}, Job: "j", Owner: ActorOwner{Node: "s1", Handle: 3, Boot: "b"}, Applied: 5},
		&ActorCall{Job: "j", Method: "incr", Input: []byte{0, 1, 0xff}, RemoteRefs: []RemoteRef{{Ref: 1, Node: "s1", Handle: 1, Size: -1}}},
		&ActorKill{Job: "j", Owner: &ActorOwner{Node: "s1", Handle: 3, Boot: "b"}},
		&NodeView{Heartbeat: Heartbeat{ID: "w1", API: "http://w1", Total: map[string]float64{"cpu": 4}, Available: map[string]float64{"cpu": 1.5}, TasksRun: 9}, SeenAgoMs: 40, Dead: true},
		&JoinRequest{ID: "w2", Raft: "127.0.0.1:1", API: "http://w2", Worker: true},
		&JoinResponse{Secrets: map[string]string{"token": "x"}},
		&ObjectMeta{Size: 3, Checksum: "aa", Refs: []int64{5, 6}},
		&NodeStatus{ID: "s1", State: "Leader", AppliedIndex: 9, StateHash: "h", PulledBytes: 1},
	}
	for _, m := range msgs {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		back := reflect.New(reflect.TypeOf(m).Elem()).Interface()
		if err := json.Unmarshal(b, back); err != nil || !reflect.DeepEqual(back, m) {
			t.Errorf("%T: %s reads back as %+v (%v)", m, b, back, err)
		}
	}
}
