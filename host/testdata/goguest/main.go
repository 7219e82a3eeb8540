// Command goguest is a Go guest for the host tests, built with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o goguest.wasm ./host/testdata/goguest
//
// The tests build it into a temporary directory; nothing built is committed.
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/lumenflow/lumen/sdk/abi"
	lumen "github.com/lumenflow/lumen/sdk/go"
)

type addArgs struct{ A, B int }

type counter struct{ N int }

// hoard keeps what membomb allocates reachable.
var hoard [][]byte

func init() {
	// tasks and objects for nested; fs, env and clock only matter when the job grants them.
	lumen.Require(abi.CapTasks, abi.CapObjects, abi.CapFS, abi.CapEnv, abi.CapClock)

	lumen.BytesTask("echo", func(b []byte) ([]byte, error) { return b, nil })
	lumen.Task("add", func(in addArgs) (int, error) { return in.A + in.B, nil })
	lumen.Task("hello", func(name string) (string, error) {
		lumen.Logf("hello %s", name)
		fmt.Println("to stdout:", name)
		fmt.Fprintln(os.Stderr, "to stderr:", name)
		return "hi " + name, nil
	})
	lumen.Task("fail", func(msg string) (int, error) { return 0, lumen.NewError("E_GO", "%s", msg) })
	lumen.Task("panic", func(msg string) (int, error) { panic(msg) })

	c := lumen.Actor("Counter", func(start int) (*counter, error) { return &counter{N: start}, nil })
	lumen.Method(c, "incr", func(s *counter, by int) (int, error) { s.N += by; return s.N, nil })

	// nested submits add as a task of this same module and waits for its result.
	lumen.Task("nested", func(in addArgs) (int, error) {
		ref, err := lumen.Submit("add", in)
		if err != nil {
			return 0, err
		}
		return lumen.Get[int](ref)
	})

	lumen.Task("readfile", func(path string) (string, error) {
		b, err := os.ReadFile(path)
		return string(b), err
	})
	lumen.Task("getenv", func(key string) (string, error) { return os.Getenv(key), nil })
	lumen.Task("now", func(struct{}) (int64, error) { return time.Now().Unix(), nil })

	lumen.Task("loop", func(n int) (int, error) {
		for {
			n = n*31 + 7
		}
	})
	lumen.Task("membomb", func(mib int) (int, error) {
		for i := 0; ; i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = byte(i)
			}
			hoard = append(hoard, b)
		}
	})
	lumen.Task("recurse", func(n int) (int, error) { return recurse(n) + 1, nil })
}

//go:noinline
func recurse(n int) int {
	var pad [64]byte
	pad[n%64] = byte(n)
	return recurse(n+1) + int(pad[(n+1)%64])
}

func main() {}
