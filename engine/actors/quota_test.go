package actors

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/lumenflow/lumen/engine/tasks"
	"github.com/lumenflow/lumen/sdk/abi"
)

// A job's live actors on a node are capped (Deps.JobActors): past the cap creation is refused
// with limit_exceeded (job_actors) naming the job and the cap; other jobs are not held back, and
// a killed actor frees its place.
func TestQuota_JobActorsCapsAJobsLiveActors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cap    int // Deps.JobActors
		create int // actors of job "a" created before the checked one
		refuse bool
	}{
		{"under the cap", 3, 2, false},
		{"at the cap", 3, 3, true},
		{"a cap of one", 1, 1, true},
		{"no cap", -1, 12, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, 2)
			n.m.capJob = tc.cap
			var ids []int64
			for range tc.create {
				ids = append(ids, n.create(t, "a", 0, abi.ActorCreateRequest{}))
			}
			req := abi.ActorCreateRequest{Actor: "Counter", Args: []byte("0")}
			_, err := n.m.Create(context.Background(), "a", guestMod.Digest, &req, &tasks.Scope{Grants: grants})
			if !tc.refuse {
				if err != nil {
					t.Fatalf("refused under the cap: %v", err)
				}
				return
			}
			var ae *abi.Error
			if !errors.As(err, &ae) || ae.Kind != abi.KindLimit || ae.Limit != abi.QuotaJobActors || !abi.IsQuota(ae.Limit) {
				t.Fatalf("over the cap: %v, want limit_exceeded (job_actors)", err)
			}
			for _, w := range []string{`job "a"`, "job_actors " + strconv.Itoa(tc.cap)} {
				if !strings.Contains(ae.Message, w) {
					t.Errorf("message %q does not name %s", ae.Message, w)
				}
			}
			// A named actor is refused the same way, and its name stays free.
			named := abi.ActorCreateRequest{Actor: "Counter", Args: []byte("0"), Name: "n1"}
			if _, err := n.m.Create(context.Background(), "a", guestMod.Digest, &named, &tasks.Scope{Grants: grants}); !errors.As(err, &ae) || ae.Limit != abi.QuotaJobActors {
				t.Fatalf("a named actor over the cap: %v", err)
			}
			// Another job has room.
			n.create(t, "b", 0, abi.ActorCreateRequest{Name: "n1"})
			// A killed actor frees its place.
			if err := n.m.Kill("a", ids[0]); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the killed actor's place is free", func() bool {
				_, err := n.m.Create(context.Background(), "a", guestMod.Digest, &req, &tasks.Scope{Grants: grants})
				return err == nil
			})
		})
	}
	if n := newNode(t, 1); n.m.capJob != DefaultJobActors || DefaultJobActors != 10_000 {
		t.Fatalf("the default cap is %d, want 10,000", n.m.capJob)
	}
}
