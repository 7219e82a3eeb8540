// Package objects is a node's object store: the values guests put and the results of tasks and
// actor calls, each scoped to a job and reference counted, spilled to disk past a memory cap
// (least recently used first), and, for a value that lives on another node, its location and the
// lineage that rebuilds it. It owns the {"$ref": N} form a value uses to refer to other objects.
// It knows nothing of placement or the network: the engine sets Store.Fetch and
// Store.ReleaseRemote to reach other nodes, and keeps its own task type as an object's lineage.
//
// It may import host and sdk/abi (the statuses and errors host functions return), and otherwise
// only the standard library.
package objects
