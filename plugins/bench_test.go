package plugins

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkRegistry_Bind1000SameBytes binds 1,000 versions of one name to the same bytes, by
// re-uploading them (Add of registered bytes) as a user does, against the registry's own store
// in memory, on disk (synchronous writes) and against a shared store. One op is the 1,000 binds.
// A bind used to reload and re-sort the whole index, so the 1,000 cost O(n^2 log n).
func BenchmarkRegistry_Bind1000SameBytes(b *testing.B) {
	for _, where := range []string{"memory", "disk", "shared"} {
		b.Run(where, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				insp := newFakeInspector()
				cfg := Config{MaxModuleBytes: testMax, Inspector: insp}
				switch where {
				case "disk":
					cfg.Dir = b.TempDir()
				case "shared":
					cfg.Store = &mapStore{m: map[string][]byte{}}
				}
				r := openCfg(b, cfg)
				wasm := insp.add(taskGuest("bind"))
				mustAdd(b, r, wasm, AddOptions{})
				b.StartTimer()
				for i := range 1000 {
					mustAdd(b, r, wasm, AddOptions{Name: "svc", Version: fmt.Sprintf("1.%d.0", i)})
				}
				b.StopTimer()
				if m, err := r.Resolve("svc"); err != nil || len(m.Names) != 1000 {
					b.Fatalf("after 1,000 binds: %v names, %v", len(m.Names), err)
				}
				r.Close()
				b.StartTimer()
			}
		})
	}
}

var _ = context.Background
