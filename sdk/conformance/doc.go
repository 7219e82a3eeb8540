// Package conformance checks that Lumen's guest SDKs behave alike: the same guest functions are
// written in Go (go/), C (c/), Rust (rust/) and AssemblyScript (assemblyscript/), and one Go test
// builds each from source, runs them through the engine and compares the results.
//
// Every guest exports these functions:
//
//	echo         bytes  returns its input
//	add          json   {"a": 40, "b": 2} -> 42
//	greet        json   {"name": "Ada"} -> "hello, Ada", logging "greeting Ada"
//	fail         json   a guest error with code "E_CONF" and message "conformance failure"
//	trap         json   traps (unreachable, abort, an access outside memory)
//	nested       bytes  submits echo in its own module with its input and returns the result
//	nested_fail  json   submits fail and returns the SDK's error for the failed child
//	counter      json   creates a Counter actor, calls incr(1) three times, returns the last result: 3
//	objects      bytes  puts its input as an object, gets it back and returns it
//	missing      json   gets object 999999 and returns the SDK's error for the host's not_found
//	loop         json   never returns: stopped at the deadline
//	grow         json   allocates until memory.grow fails: stopped at the memory limit
//
// plus the actor type Counter (constructor: the integer to start from) with method incr (the
// integer to add; returns the new count).
//
// Building needs the guest toolchains: run `make toolchain` first (make test does).
package conformance
