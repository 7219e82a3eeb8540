package bench_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a run leaves goroutines behind: Run must close its engine, its
// REST server and their connections.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			println("goleak:", err.Error())
			code = 1
		}
	}
	os.Exit(code)
}
