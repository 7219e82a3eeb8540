package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine/bench"
	"github.com/lumenflow/lumen/internal/lumentest"
)

// padModule returns wasm padded by a custom section to exactly size bytes, the padding starting
// with seed (different seeds, different digests). The module runs as wasm does.
func padModule(t *testing.T, wasm []byte, size int, seed uint64) []byte {
	t.Helper()
	const name = "lumen.test.pad"
	pad := size - len(wasm) - 1 - 4 - 1 - len(name)
	n := 1 + len(name) + pad
	if pad < 8 || n >= 1<<28 {
		t.Fatalf("padModule(%d): out of range", size)
	}
	out := make([]byte, 0, size)
	out = append(out, wasm...)
	out = append(out, 0x00, byte(n)|0x80, byte(n>>7)|0x80, byte(n>>14)|0x80, byte(n>>21), byte(len(name)))
	out = append(out, name...)
	out = binary.LittleEndian.AppendUint64(out, seed)
	return out[:size]
}

// echo calls ref's echo(12) on node n and returns the result or the error.
func echo(n *lumentest.Node, ref string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var task struct {
		Ref int64  `json:"ref"`
		Job string `json:"job"`
	}
	if err := n.Client().JSON(ctx, "POST", "/v1/tasks", []byte(`{"module":"`+ref+`","function":"echo","args":12}`), &task); err != nil {
		return "", err
	}
	out, err := n.Client().Get(ctx, task.Job, task.Ref, 30*time.Second)
	return string(out), err
}

// echoOn calls ref's echo(12) on node n until it answers "12", up to 10 s: a node serves what it
// has applied, which may lag the push's commit by a moment.
func echoOn(t *testing.T, n *lumentest.Node, ref string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := echo(n, ref)
		if err == nil && out == "12" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("call of %s on %s: %q, %v", ref, n.ID, out, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leaderTerm returns the leader and term node n reports.
func leaderTerm(t *testing.T, n *lumentest.Node) (string, uint64) {
	t.Helper()
	st, err := n.Client().Cluster(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Leader, st.Term
}

// A module's bytes stay off the raft log (finding: 5–9 s per module on 3 nodes, 55 s for 13 MB,
// and the leader stepping down during pushes): a 13 MiB push through a follower of a real
// three-process cluster answers within 1 s with the leader and term unchanged, and a call of it
// runs on every node. Then the uploader of a second module is killed as soon as the push answers:
// the other nodes still call it (the upload was acknowledged once another node held a copy).
// Last, with the nodes that hold a module down and the survivor's copy gone, a call fails with a
// clear error, and works again once a holder is back. LUMEN_ROBUSTNESS=1 adds rounds of the
// killed uploader with 64 MiB modules.
func TestCluster_ModulePushKeepsBytesOffTheRaftLog(t *testing.T) {
	c := lumentest.StartCluster(t, 3, 0)
	leader := c.Leader(10 * time.Second)
	c.Converge(10 * time.Second)
	// The bench guest (no imports, a few hundred bytes of code) padded: the push measures the
	// bytes' way and the commit, not the compile of 13 MB of code.
	guest := bench.Guest()
	var followers []*lumentest.Node
	for _, n := range c.Nodes {
		if n != leader {
			followers = append(followers, n)
		}
	}

	// 13 MiB through a follower: within 1 s, no leader change, callable everywhere.
	leaderID, term := leaderTerm(t, leader)
	wasm := padModule(t, guest, 13<<20, 1)
	t0 := time.Now()
	followers[0].Push(wasm, "big", "1.0.0")
	took := time.Since(t0)
	t.Logf("13 MiB push through a follower: %v", took)
	if took > time.Second {
		t.Errorf("the 13 MiB push took %v, want ≤ 1 s", took)
	}
	for _, n := range c.Nodes {
		if id, tm := leaderTerm(t, n); id != leaderID || tm != term {
			t.Errorf("%s: leader %s term %d after the push, %s term %d before", n.ID, id, tm, leaderID, term)
		}
	}
	for _, n := range c.Nodes {
		echoOn(t, n, "big@1.0.0")
	}

	// The uploader killed as soon as its push answers: the others still call the module.
	rounds, size := 1, 4<<20
	if os.Getenv("LUMEN_ROBUSTNESS") != "" {
		rounds, size = 3, 64<<20
	}
	for r := range rounds {
		up := c.Alive()[r%len(c.Alive())]
		ver := fmt.Sprintf("2.0.%d", r)
		t0 := time.Now()
		up.Push(padModule(t, guest, size, uint64(100+r)), "killed", ver)
		t.Logf("round %d: %d MiB push through %s: %v", r, size>>20, up.ID, time.Since(t0))
		up.Kill()
		for _, n := range c.Alive() {
			echoOn(t, n, "killed@"+ver)
		}
		up.Restart()
		c.Leader(10 * time.Second)
		c.Converge(20 * time.Second)
	}

	// Bytes held by no reachable node: a clear error, and the call works once a holder is back.
	third := padModule(t, guest, 1<<20, 7)
	sum := sha256.Sum256(third)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	c.Nodes[0].Push(third, "lost", "1.0.0")
	c.Converge(20 * time.Second)
	survivor := c.Nodes[2]
	held := filepath.Join(survivor.DataDir, "modules", hex.EncodeToString(sum[:])+".wasm")
	deadline := time.Now().Add(10 * time.Second)
	for { // the survivor fetches it in the background once it applies the record
		if _, err := os.Stat(held); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not fetch the module's bytes within 10 s", survivor.ID)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.Nodes[0].Kill()
	c.Nodes[1].Kill()
	if err := os.Remove(held); err != nil {
		t.Fatal(err)
	}
	_, err := echo(survivor, "lost@1.0.0")
	if want := "module bytes unavailable: no reachable node holds " + digest; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("call with no holder reachable: %v; want an error saying %q", err, want)
	}
	c.Nodes[0].Restart()
	deadline = time.Now().Add(20 * time.Second)
	for {
		out, err := echo(survivor, "lost@1.0.0")
		if err == nil && out == "12" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the call did not work again within 20 s of a holder's return: %q, %v", out, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
