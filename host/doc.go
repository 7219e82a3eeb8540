// Package host runs Lumen guest modules in wazero sandboxes: compile cache, per-call limits,
// instance pools and the "lumen" host module; it knows no workflows.
//
// A Runtime compiles modules once (by sha256 digest, with wazero's compilation cache on disk under
// Config.DataDir) and runs calls on pooled instances. Every call runs with a memory page limit, a
// wall-clock deadline, a cap on the bytes it writes to stdout, stderr and the log, a cap on its
// output, and a slot of the Runtime's concurrency cap. A guest sees no files, environment, real
// clock or real randomness unless its job grants the capability and its manifest requests it.
//
// Failed calls return an *abi.Error whose Kind says who failed: the guest (KindGuest: it called
// the error host function), the sandbox (KindTrap, KindLimit), the job's grants (KindDenied), the
// request (KindBadInput, KindNotFound) or the host (KindSystem). Only the host decides a kind; a
// guest can report KindGuest and nothing else.
//
// The engine reaches into calls through Services, which the host calls when a guest uses the
// object, task, actor and dataset host functions. Dataset handles are the call's own: the host
// refuses them in any other call and closes those a call leaves open when it ends.
package host

//go:generate go run ./testdata/gen.go
