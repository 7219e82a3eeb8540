// Command guest is the fib example: Fibonacci numbers by nested tasks, each level submitting the
// two below it and waiting for both.
package main

import (
	"github.com/lumenflow/lumen/sdk/abi"
	lumen "github.com/lumenflow/lumen/sdk/go"
)

func init() {
	lumen.Require(abi.CapObjects, abi.CapTasks)
	lumen.Task("fib", fib)
}

func fib(n int) (int, error) {
	if n < 0 {
		return 0, lumen.NewError("bad_input", "fib(%d): n must not be negative", n)
	}
	if n < 2 {
		return n, nil
	}
	a, err := lumen.Submit("fib", n-1)
	if err != nil {
		return 0, err
	}
	b, err := lumen.Submit("fib", n-2)
	if err != nil {
		return 0, err
	}
	x, err := lumen.Get[int](a)
	if err != nil {
		return 0, err
	}
	y, err := lumen.Get[int](b)
	return x + y, err
}

func main() {}
