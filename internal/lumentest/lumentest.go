// Package lumentest runs real `lumen up` processes for end-to-end tests: built once per test
// binary from this module's source, started on a free loopback port with a data directory of
// the test's, killed with SIGKILL or stopped at the test's end.
package lumentest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine/client"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/lumen once per test binary and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
		out, err := exec.Command(goBin, "env", "GOMOD").Output()
		if err != nil {
			buildErr = err
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir := filepath.Join(cache, "lumen", "bin")
		if buildErr = os.MkdirAll(dir, 0o755); buildErr != nil {
			return
		}
		// One binary per test process, as packages are tested in parallel; those left by
		// earlier runs are removed once they are an hour old.
		if old, _ := filepath.Glob(filepath.Join(dir, "lumen-*")); len(old) > 0 {
			for _, f := range old {
				if st, err := os.Stat(f); err == nil && time.Since(st.ModTime()) > time.Hour {
					os.Remove(f)
				}
			}
		}
		binPath = filepath.Join(dir, fmt.Sprintf("lumen-%d", os.Getpid()))
		cmd := exec.Command(goBin, "build", "-o", binPath, "./cmd/lumen")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build lumen: %v\n%s", err, b)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Node is one running `lumen up` or `lumen server`.
type Node struct {
	t       testing.TB
	ID      string   // the node's id in a cluster
	args    []string // the command line after the binary; nil runs `lumen up` on a free port
	DataDir string
	URL     string
	Token   string
	cmd     *exec.Cmd
	exited  chan struct{}
	logMu   sync.Mutex
	log     strings.Builder
}

// Start runs `lumen up` on dataDir (a new temporary one if empty) and waits until it serves.
// The node is killed at the end of the test.
func Start(t testing.TB, dataDir string) *Node {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	n := &Node{t: t, DataDir: dataDir}
	n.start()
	t.Cleanup(func() { n.Kill() })
	return n
}

func (n *Node) start() {
	n.t.Helper()
	args := n.args
	if args == nil {
		args = []string{"up", "--data", n.DataDir, "--http", "127.0.0.1:0"}
	}
	n.cmd = exec.Command(Binary(n.t), args...)
	stdout, err := n.cmd.StdoutPipe()
	if err != nil {
		n.t.Fatal(err)
	}
	n.cmd.Stderr = &lockedWriter{n}
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.exited = make(chan struct{})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			n.logMu.Lock()
			n.log.WriteString(line + "\n")
			n.logMu.Unlock()
			if u, ok := strings.CutPrefix(strings.TrimSpace(line), "API:"); ok {
				select {
				case urls <- strings.TrimSuffix(strings.TrimSpace(u), "/v1"):
				default:
				}
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() { n.cmd.Wait(); close(n.exited) }()
	select {
	case n.URL = <-urls:
	case <-n.exited:
		n.t.Fatalf("lumen up exited at start:\n%s", n.Output())
	case <-time.After(60 * time.Second):
		n.t.Fatalf("lumen up did not start in 60 s:\n%s", n.Output())
	}
	tok, err := os.ReadFile(filepath.Join(n.DataDir, "token"))
	if err != nil {
		n.t.Fatal(err)
	}
	n.Token = strings.TrimSpace(string(tok))
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(n.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("lumen up not healthy: %v\n%s", err, n.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type lockedWriter struct{ n *Node }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.n.logMu.Lock()
	defer w.n.logMu.Unlock()
	return w.n.log.Write(p)
}

// Output returns what the process printed so far.
func (n *Node) Output() string {
	n.logMu.Lock()
	defer n.logMu.Unlock()
	return n.log.String()
}

// Client returns an API client of the node.
func (n *Node) Client() *client.Client {
	return &client.Client{URL: n.URL, Token: n.Token, HTTP: &http.Client{Timeout: 2 * time.Minute}}
}

// Kill stops the process with SIGKILL, as a crash would, and waits for it to be gone.
func (n *Node) Kill() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGCONT) // a paused process dies only once resumed
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
}

// Pause stops the process with SIGSTOP (it holds its sockets but answers nothing, as a node cut
// off the network would); Resume continues it.
// PID is the node's process id.
func (n *Node) PID() int { return n.cmd.Process.Pid }

func (n *Node) Pause()  { n.cmd.Process.Signal(syscall.SIGSTOP) }
func (n *Node) Resume() { n.cmd.Process.Signal(syscall.SIGCONT) }

// Alive says whether the process is running.
func (n *Node) Alive() bool {
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// Restart starts the node again on the same data directory (on a new port).
func (n *Node) Restart() {
	n.t.Helper()
	n.Kill()
	n.start()
}

// Push uploads a module, failing the test on error.
func (n *Node) Push(wasm []byte, name, version string) *client.Module {
	n.t.Helper()
	m, err := n.Client().PushModule(context.Background(), wasm, name, version)
	if err != nil {
		n.t.Fatalf("push %s@%s: %v", name, version, err)
	}
	return m
}
