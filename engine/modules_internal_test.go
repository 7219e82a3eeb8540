package engine

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/plugins"
)

// The node's compile cache lets go of a module the registry refused after it compiled (here: a
// name already bound to other bytes) and of one a delete removed. It used to keep both for the
// life of the node.
func TestEngine_RefusedAndDeletedModulesLeaveTheCompileCache(t *testing.T) {
	wasm, err := os.ReadFile(guestbuild.Go(t, "testdata/guest"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	e, err := Open(ctx, Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	m, err := e.Modules().Add(ctx, wasm, plugins.AddOptions{Name: "svc", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Modules().module(ctx, m.Digest); err != nil {
		t.Fatal(err)
	}
	if n := e.rt.Stats().Modules; n != 1 {
		t.Fatalf("%d modules compiled, want 1", n)
	}
	// The same guest with a custom section ("note"): other bytes, the same name and version.
	other := append(slices.Clone(wasm), 0x00, 0x06, 0x04, 'n', 'o', 't', 'e', 'x')
	if _, err := e.Modules().Add(ctx, other, plugins.AddOptions{Name: "svc", Version: "1.0.0"}); !errors.Is(err, plugins.ErrConflict) {
		t.Fatalf("upload under a bound name: %v, want a conflict", err)
	}
	if n := e.rt.Stats().Modules; n != 1 {
		t.Fatalf("%d modules compiled after a refused upload, want 1: the refused one is kept", n)
	}
	if err := e.Modules().Delete(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	if n := e.rt.Stats().Modules; n != 0 {
		t.Fatalf("%d modules compiled after the delete, want 0", n)
	}
}
