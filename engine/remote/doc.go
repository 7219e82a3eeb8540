// Package remote owns the node's cross-node data plane, in Ray's ownership model: objects whose
// value lives on another node (fetching them on first read, checked against their checksums,
// retried while their holder is alive, rebuilt from lineage once it is lost), where the objects a
// placed task reads live (ShipRefs on the owner, TakeRefs on the node running it), the results
// this node holds for tasks other nodes placed here (released when their owner dies), and running
// a placed task on the node chosen for it (RunOn), with the counters of objects rebuilt and bytes
// pulled.
//
// It knows the node only through Deps: it imports engine/cluster, engine/objects, engine/peer,
// engine/tasks, engine/wire and sdk/abi, never package engine.
package remote
