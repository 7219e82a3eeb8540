package lumentest

import "testing"

// StartWith runs `lumen up --data dataDir --http 127.0.0.1:0` followed by extra (for example
// "--model", dir) and waits until it serves, as Start does. Restart keeps the same flags.
func StartWith(t testing.TB, dataDir string, extra ...string) *Node {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	n := &Node{t: t, DataDir: dataDir}
	n.args = append([]string{"up", "--data", dataDir, "--http", "127.0.0.1:0"}, extra...)
	n.start()
	t.Cleanup(func() { n.Kill() })
	return n
}
