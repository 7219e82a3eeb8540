package engine

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func value(i, n int) []byte { return bytes.Repeat([]byte{byte(i)}, n) }

func spillFiles(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "objects-spill"))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// Through the engine: a node whose store holds 64 KiB keeps 40 objects of 16 KiB (640 KiB)
// gettable, spilled under its data directory, and a restart of the store empties the folder.
func TestEngine_ObjectsSpillUnderTheDataDir(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	e, err := Open(ctx, Config{DataDir: dir, ObjectStoreBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	var hs []int64
	for i := range 40 {
		h, err := e.Objects().Put("j", value(i, 16<<10))
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		hs = append(hs, h)
	}
	if st := e.Stats(); st.ObjectBytes > 64<<10 || st.Objects != 40 {
		t.Fatalf("%d objects, %d bytes in memory", st.Objects, st.ObjectBytes)
	}
	if n := spillFiles(t, dir); n < 36 {
		t.Fatalf("%d spill files, want at least 36", n)
	}
	for i := 39; i >= 0; i-- {
		got, err := e.Objects().Get(ctx, "j", hs[i], time.Second)
		if err != nil || !bytes.Equal(got, value(i, 16<<10)) {
			t.Fatalf("get %d: %d bytes, %v", i, len(got), err)
		}
	}
	for _, h := range hs {
		e.Objects().Release("j", h)
	}
	if n := spillFiles(t, dir); n != 0 {
		t.Errorf("%d spill files after release", n)
	}
}
