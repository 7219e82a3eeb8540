package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// A placement group reserves its bundles out of the node's free resources, all or none: tasks
// outside it wait while tasks inside it run on its reservation; removing it gives the resources
// back. Groups that cannot fit now, or ever, are refused saying which.
func TestPlacementGroup_ReservesAndReleases(t *testing.T) {
	e, _ := open(t, engine.Config{Resources: scheduler.Resources{scheduler.CPU: 2}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	if _, err := e.Groups().Create(ctx, engine.PlacementGroupSpec{Strategy: "STRICT_PACK", Bundles: []scheduler.Resources{{scheduler.CPU: 2}, {scheduler.CPU: 1}}}, true); err == nil || !strings.Contains(err.Error(), "never") {
		t.Fatalf("a group larger than the node: %v", err)
	}
	if _, err := e.Groups().Create(ctx, engine.PlacementGroupSpec{Strategy: "NEAR"}, true); err == nil {
		t.Fatal("unknown strategy accepted")
	}
	pg, err := e.Groups().Create(ctx, engine.PlacementGroupSpec{Name: "g", Strategy: "STRICT_PACK", Bundles: []scheduler.Resources{{scheduler.CPU: 1}, {scheduler.CPU: 1}}}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(pg.Ready) != 2 || !pg.Ready[0] || !pg.Ready[1] || pg.Nodes[0] != "local" {
		t.Fatalf("group %+v", pg)
	}
	if free := e.Available()[scheduler.CPU]; free != 0 {
		t.Fatalf("%v cpu free with the whole node reserved", free)
	}
	if _, err := e.Groups().Create(ctx, engine.PlacementGroupSpec{Bundles: []scheduler.Resources{{scheduler.CPU: 1}}}, true); err == nil || !strings.Contains(err.Error(), "now") {
		t.Fatalf("a group with no room now: %v", err)
	}

	grants := host.Grants{Capabilities: []abi.Capability{abi.CapObjects, abi.CapTasks, abi.CapActors}}
	one := abi.Resources{CPU: 1}
	outside, err := e.Tasks().Submit(ctx, "", &abi.TaskRequest{Module: "svc", Function: "square", Args: []byte("3"), Resources: one}, grants)
	if err != nil {
		t.Fatal(err)
	}
	inside, err := e.Tasks().InGroup(ctx, "", &abi.TaskRequest{Module: "svc", Function: "square", Args: []byte("4"), Resources: one}, grants, pg.ID, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := e.Objects().Get(ctx, "", inside, 30*time.Second); err != nil || string(out) != "16" {
		t.Fatalf("task in the group: %q %v", out, err)
	}
	if _, err := e.Objects().Get(ctx, "", outside, 200*time.Millisecond); err == nil {
		t.Fatal("a task outside the group ran on resources the group reserved")
	}
	if _, err := e.Tasks().InGroup(ctx, "", &abi.TaskRequest{Module: "svc", Function: "square", Args: []byte("4"), Resources: abi.Resources{CPU: 2}}, grants, pg.ID, 0, nil); err == nil {
		t.Fatal("a task larger than its bundle accepted")
	}
	if _, err := e.Tasks().InGroup(ctx, "", &abi.TaskRequest{Module: "svc", Function: "square", Args: []byte("4")}, grants, pg.ID, 7, nil); err == nil {
		t.Fatal("a bundle index out of range accepted")
	}

	if err := e.Groups().Remove(ctx, pg.ID); err != nil {
		t.Fatal(err)
	}
	if out, err := e.Objects().Get(ctx, "", outside, 30*time.Second); err != nil || string(out) != "9" {
		t.Fatalf("the waiting task after removal: %q %v", out, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.Available()[scheduler.CPU] != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%v cpu free after removal, want 2", e.Available()[scheduler.CPU])
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := e.Groups().Remove(ctx, pg.ID); !errors.Is(err, engine.ErrGroupNotFound) {
		t.Fatalf("removing twice: %v", err)
	}
}

// A named actor's name is recorded in the replicated state; a restart (actors do not survive
// one) leaves the name free again, and a second actor of the same name is refused meanwhile.
func TestNamedActor_NameIsRecordedAndFreedByARestart(t *testing.T) {
	dir := t.TempDir()
	e, _ := open(t, engine.Config{DataDir: dir})
	ctx := context.Background()
	req := &abi.ActorCreateRequest{Module: "svc", Actor: "Counter", Args: []byte("1"), Name: "one", Namespace: "ns"}
	if _, err := e.Actors().Create(ctx, "", req, allCaps); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Actors().Create(ctx, "", req, allCaps); err == nil || !strings.Contains(err.Error(), "already lives") {
		t.Fatalf("a second actor of the same name: %v", err)
	}
	if _, _, err := e.Actors().Named("ns", "none"); err == nil {
		t.Fatal("an unknown name was found")
	}
	e.Close(ctx)
	e2, err := engine.Open(ctx, engine.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close(ctx)
	if _, err := e2.Actors().Create(ctx, "", req, allCaps); err != nil {
		t.Fatalf("the name after a restart: %v", err)
	}
	if _, _, err := e2.Actors().Named("ns", "one"); err != nil {
		t.Fatal(err)
	}
}
