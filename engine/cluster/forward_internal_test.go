package cluster

import (
	"errors"
	"testing"

	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/raftstore"
)

// The leader's answer to a forwarded write or read becomes the error the leader had.
func TestForwardedError_MapsTheLeadersAnswer(t *testing.T) {
	if forwardedError(nil) != nil {
		t.Fatal("no error became one")
	}
	for _, c := range []struct {
		err  error
		want error
	}{
		{errors.New("connection refused"), raftstore.ErrUnreachable},
		{&wire.Error{Kind: wire.KindNotLeader, Message: "m"}, raftstore.ErrNotLeader},
		{&wire.Error{Kind: wire.KindConflict, Message: "m"}, raftstore.ErrConflict},
		{&wire.Error{Kind: wire.KindBadInput, Message: "m"}, raftstore.ErrBadCommand},
		{&wire.Error{Kind: wire.KindUnavailable, Message: "m"}, raftstore.ErrUnreachable},
		{&wire.Error{Kind: wire.KindInternal, Message: "m"}, raftstore.ErrUnreachable},
	} {
		if got := forwardedError(c.err); !errors.Is(got, c.want) {
			t.Errorf("%v became %v, want %v", c.err, got, c.want)
		}
	}
	got := forwardedError(&wire.Error{Kind: wire.KindNotFound, Message: "gone"})
	for _, sentinel := range []error{raftstore.ErrUnreachable, raftstore.ErrNotLeader, raftstore.ErrConflict, raftstore.ErrBadCommand} {
		if errors.Is(got, sentinel) {
			t.Errorf("a 404 became %v", got)
		}
	}
}
