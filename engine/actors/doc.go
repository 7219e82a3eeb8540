// Package actors owns one node's actors: the live ones (a dedicated instance, a mailbox of
// calls run one at a time in arrival order, at-most-once, restarts up to max_restarts with the
// constructor or the state saved by __save/__load), kills and the memory of ended actors; actors
// placed on other nodes when they do not fit here, their proxies, their restarts elsewhere when
// their node fails, and the reaper of actors whose owner is gone; named actors, unique across the
// cluster; durable actors, whose state is stored through raft before each call is answered and
// loaded by the instance created again when their node is lost (durable.go); the cap on a job's
// actors on the node (Deps.JobActors); and every actor's record (ALIVE, RESTARTING, DEAD) in the
// replicated state under actors/<owner>/<handle>, with the names under actor/<namespace>/<name>.
//
// It knows the node only through Deps: it imports engine/cluster, engine/objects, engine/peer,
// engine/scheduler, engine/tasks, engine/wire, host, raftstore and sdk/abi, never package engine.
// Jobs are named by the caller: an empty job is the caller's to default.
package actors
