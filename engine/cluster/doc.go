// Package cluster is one node's membership in the replicated control plane: it opens the node's
// raft (transport, TLS, bootstrap or join through a member's peer routes), keeps the join token
// and hands the API tokens to joining nodes, records each member's addresses in the replicated
// state, forwards a follower's writes and reads to the leader, and serves the small internal
// key-value store and the module registry's store on that state.
//
// It also owns liveness and the placement view, as in Ray: every node heartbeats its resources
// to the leader, which keeps liveness in memory and commits only the decision "node dead" (and
// its reversal) through raft. The heartbeat's answer is the leader's view of every live node,
// which a node uses to place the tasks submitted to it (Node.Place): where they fit now,
// spreading load, the node itself first when it has room.
//
// It knows the rest of the node only through Deps (its resources, its task and object counters,
// what to do when a node is declared dead) and may import engine/peer, engine/scheduler,
// engine/wire, plugins and raftstore; never package engine.
package cluster
