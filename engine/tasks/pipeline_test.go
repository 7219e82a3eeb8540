package tasks

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine/objects"
	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/sdk/abi"
)

// node is one node's pipeline over a real runtime and the engine's test guest, with the
// smallest real Backend: one module, no peers unless a test gives placement to a cluster it
// describes.
type node struct {
	p       *Pipeline
	mod     *host.Module
	stop    context.CancelFunc
	wg      sync.WaitGroup
	runOn   func(ctx context.Context, node string, t *Placed) (*objects.Location, error)
	place   []string // nodes PlaceOrQueue answers, in turn ("" when spent)
	peers   bool
	mu      sync.Mutex
	endings int // scopes ended
}

func (n *node) Function(_ context.Context, module, function string) (Fn, error) {
	if module != "svc" && module != n.mod.Digest {
		return Fn{}, &abi.Error{Kind: abi.KindNotFound, Message: "no module " + module}
	}
	return Fn{Module: n.mod}, nil
}

func (n *node) EndScope(sc *Scope, out []byte, holder *objects.Object, keep bool) {
	n.p.Objects.ReleaseAll(sc.Borrowed)
	n.mu.Lock()
	n.endings++
	n.mu.Unlock()
}

func (n *node) ResetScope(sc *Scope) { n.p.Objects.ReleaseAll(sc.Owned); sc.Owned = nil }
func (n *node) Peers() bool          { return n.peers }
func (n *node) Beat() time.Duration  { return 10 * time.Millisecond }

func (n *node) Place(d scheduler.Resources, exclude map[string]bool) string {
	return n.PlaceOrQueue(d, exclude)
}

func (n *node) PlaceOrQueue(scheduler.Resources, map[string]bool) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.place) == 0 {
		return ""
	}
	next := n.place[0]
	n.place = n.place[1:]
	return next
}

func (n *node) RunOn(ctx context.Context, node string, t *Placed) (*objects.Location, error) {
	return n.runOn(ctx, node, t)
}

// The runtime and the compiled guest are shared by the tests: compiling is what takes time.
var (
	guestOnce sync.Once
	sharedRT  *host.Runtime
	guestMod  *host.Module
	guestErr  error
)

// grants are the capabilities the test guest's module asks for.
var grants = host.Grants{Capabilities: []abi.Capability{abi.CapObjects, abi.CapTasks, abi.CapActors}}

func newNode(t *testing.T, cpus float64) *node {
	t.Helper()
	guestOnce.Do(func() {
		var wasm []byte
		if wasm, guestErr = os.ReadFile(guestbuild.Go(t, "../testdata/guest")); guestErr != nil {
			return
		}
		dir, err := os.MkdirTemp("", "lumen-tasks-test")
		if err != nil {
			guestErr = err
			return
		}
		if sharedRT, guestErr = host.New(context.Background(), host.Config{DataDir: dir}); guestErr != nil {
			return
		}
		guestMod, guestErr = sharedRT.Compile(context.Background(), wasm)
	})
	if guestErr != nil {
		t.Fatal(guestErr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{mod: guestMod, stop: cancel}
	n.p = New(Deps{Ctx: ctx, WG: &n.wg, Runtime: sharedRT, Objects: objects.New(0),
		Pool: NewPool(scheduler.Resources{scheduler.CPU: cpus}), Backend: n})
	t.Cleanup(func() {
		cancel()
		n.wg.Wait()
	})
	return n
}

func (n *node) get(t *testing.T, job string, h int64) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return n.p.Objects.Get(ctx, job, h, -1)
}

func TestSubmit_RunsHereAndCounts(t *testing.T) {
	n := newNode(t, 2)
	h, err := n.p.Submit(context.Background(), &Spec{Origin: FromGuest, Job: "j", Grants: grants, Module: "svc", Function: "square", Args: []byte("7")})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := n.get(t, "j", h); err != nil || string(out) != "49" {
		t.Fatalf("square(7) = %s, %v", out, err)
	}
	c := n.p.Counts()
	if c.Ran != 1 || c.ByOrigin["guest"] != 1 || c.PlacedOut != 0 {
		t.Fatalf("counts %+v", c)
	}
	if got := n.p.Pool.Available()[scheduler.CPU]; got != 2 {
		t.Fatalf("%v cpus free after the task ended, want 2", got)
	}
}

func TestSubmit_RefusesWhatCanNeverFitAndUnknownFunctions(t *testing.T) {
	n := newNode(t, 1)
	_, err := n.p.Submit(context.Background(), &Spec{Job: "j", Grants: grants, Module: "svc", Function: "square", Args: []byte("1"),
		Resources: abi.Resources{CPU: 4}})
	var ae *abi.Error
	if !errors.As(err, &ae) || ae.Kind != abi.KindBadInput || !strings.Contains(ae.Message, "square") {
		t.Fatalf("a task for 4 cpus on a 1-cpu node: %v", err)
	}
	if _, err := n.p.Submit(context.Background(), &Spec{Job: "j", Module: "nope", Function: "f"}); !errors.As(err, &ae) || ae.Kind != abi.KindNotFound {
		t.Fatalf("an unknown module: %v", err)
	}
	if _, err := n.p.Prepare(context.Background(), Spec{Job: "j", Grants: grants, Module: "svc", Function: "square", Resources: abi.Resources{CPU: 4}}); err == nil {
		t.Fatal("Prepare accepted a step that can never fit here, with no peers")
	}
}

// TestSubmit_CancelStopsATaskAndGivesItsResourcesBack cancels a task that never returns and
// checks the node gets its cpu back, so the next task runs.
func TestSubmit_CancelStopsATaskAndGivesItsResourcesBack(t *testing.T) {
	n := newNode(t, 1)
	h, err := n.p.Submit(context.Background(), &Spec{Job: "j", Grants: grants, Module: "svc", Function: "spin", Args: []byte("0"), MaxRetries: new(int)})
	if err != nil {
		t.Fatal(err)
	}
	o, err := n.p.Objects.Lookup("j", h)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for n.p.Pool.Available()[scheduler.CPU] != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the spinning task never took its cpu")
		}
		time.Sleep(time.Millisecond)
	}
	o.Cancel()
	_, err = n.get(t, "j", h)
	var ae *abi.Error
	if !errors.As(err, &ae) || ae.Kind != abi.KindCancelled {
		t.Fatalf("a cancelled task's result: %v", err)
	}
	h2, err := n.p.Submit(context.Background(), &Spec{Job: "j", Grants: grants, Module: "svc", Function: "square", Args: []byte("3")})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := n.get(t, "j", h2); err != nil || string(out) != "9" {
		t.Fatalf("the task after the cancelled one: %s, %v", out, err)
	}
}

func TestSubmit_RetriesGuestErrorsOnlyWhenAsked(t *testing.T) {
	n := newNode(t, 1)
	for _, retry := range []bool{false, true} {
		three := 3
		h, err := n.p.Submit(context.Background(), &Spec{Job: "j", Grants: grants, Module: "svc", Function: "fail", Args: []byte("1"), MaxRetries: &three, RetryGuest: retry})
		if err != nil {
			t.Fatal(err)
		}
		_, err = n.get(t, "j", h)
		var ae *abi.Error
		if !errors.As(err, &ae) || ae.Kind != abi.KindGuest || ae.Code != "E_FAIL" {
			t.Fatalf("retry=%v: %v", retry, err)
		}
	}
}

// TestPrepared_RunsEachInput runs one prepared step on several inputs at once, as a map step's
// elements do.
func TestPrepared_RunsEachInput(t *testing.T) {
	n := newNode(t, 2)
	step, err := n.p.Prepare(context.Background(), Spec{Origin: FromStep, Placement: Anywhere, Job: "j", Grants: grants, Module: "svc", Function: "square"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i, want := range []string{"0", "1", "4", "9", "16"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := step.Run(context.Background(), []byte{byte('0' + i)})
			if err != nil || string(out) != want {
				t.Errorf("element %d: %s, %v", i, out, err)
			}
		}()
	}
	wg.Wait()
	if c := n.p.Counts(); c.ByOrigin["step"] != 5 || c.Ran != 5 {
		t.Fatalf("counts %+v", c)
	}
}

// TestSubmit_PlacedTaskRunsAgainElsewhereWhenItsNodeFails places a task on a node that fails
// under it, then on one that dies too, and checks the task runs again (here, when no node is
// left) instead of failing, and that each failed node is not asked again.
func TestSubmit_PlacedTaskRunsAgainElsewhereWhenItsNodeFails(t *testing.T) {
	n := newNode(t, 1)
	n.peers = true
	n.place = []string{"n2", "n3"} // first placement, then the re-placement after n2 fails
	var asked []string
	n.runOn = func(_ context.Context, node string, pt *Placed) (*objects.Location, error) {
		asked = append(asked, node)
		if pt.Digest != n.mod.Digest || pt.Function != "square" || string(pt.Args) != "5" {
			t.Errorf("placed %+v", pt)
		}
		return nil, errors.New("connection refused") // the node failed: not the task's outcome
	}
	h, err := n.p.Submit(context.Background(), &Spec{Origin: FromAPI, Placement: Anywhere, Job: "j", Grants: grants, Module: "svc", Function: "square", Args: []byte("5")})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := n.get(t, "j", h); err != nil || string(out) != "25" {
		t.Fatalf("square(5) after two nodes failed: %s, %v", out, err)
	}
	if strings.Join(asked, ",") != "n2,n3" {
		t.Fatalf("nodes asked: %v", asked)
	}
	if c := n.p.Counts(); c.PlacedOut != 1 || c.Retried != 2 || c.Ran != 1 || len(c.ByOrigin) != 1 || c.ByOrigin["api"] != 1 {
		t.Fatalf("counts %+v: one task came in, was placed out, and ran here once after two failed nodes", c)
	}
}

// TestSubmit_PlacedTaskErrorIsItsOutcome checks a task error answered by the node running it
// is the task's result: it is not run again elsewhere.
func TestSubmit_PlacedTaskErrorIsItsOutcome(t *testing.T) {
	n := newNode(t, 1)
	n.peers = true
	n.place = []string{"n2", "n3"}
	calls := 0
	n.runOn = func(context.Context, string, *Placed) (*objects.Location, error) {
		calls++
		return nil, &abi.Error{Kind: abi.KindGuest, Code: "E_X", Message: "refused"}
	}
	h, err := n.p.Submit(context.Background(), &Spec{Placement: Anywhere, Job: "j", Grants: grants, Module: "svc", Function: "square", Args: []byte("5")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = n.get(t, "j", h)
	var ae *abi.Error
	if !errors.As(err, &ae) || ae.Code != "E_X" || calls != 1 {
		t.Fatalf("result %v after %d placements", err, calls)
	}
}

// TestPrepared_RunsElsewhereWhenNoRoomHere runs a step while this node's only cpu is busy: it
// runs on the node placement names, its output comes back, and it counts as placed out.
func TestPrepared_RunsElsewhereWhenNoRoomHere(t *testing.T) {
	n := newNode(t, 1)
	busy, err := n.p.Submit(context.Background(), &Spec{Job: "j", Grants: grants, Module: "svc", Function: "spin", Args: []byte("0"), MaxRetries: new(int)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if o, err := n.p.Objects.Lookup("j", busy); err == nil {
			o.Cancel()
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); n.p.Pool.Available()[scheduler.CPU] != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the spinning task never took the cpu")
		}
	}
	n.peers = true
	n.place = []string{"n2"}
	n.runOn = func(_ context.Context, node string, pt *Placed) (*objects.Location, error) {
		if node != "n2" || string(pt.Args) != "7" {
			t.Errorf("placed on %s: %+v", node, pt)
		}
		return &objects.Location{Node: "n2", API: "http://n2", Job: "j", Handle: 9, Size: 2}, nil
	}
	n.p.Objects.Fetch = func(context.Context, int64, *objects.Object) ([]byte, error) { return []byte("49"), nil }
	step, err := n.p.Prepare(context.Background(), Spec{Origin: FromStep, Placement: Anywhere, Job: "j", Grants: grants, Module: "svc", Function: "square"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := step.Run(context.Background(), []byte("7"))
	if err != nil || string(out) != "49" {
		t.Fatalf("step run elsewhere: %s, %v", out, err)
	}
	if c := n.p.Counts(); c.PlacedOut != 1 {
		t.Fatalf("counts %+v: the step run elsewhere was not counted as placed out", c)
	}
}
