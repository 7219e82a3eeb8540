// Package wire holds the types that cross a process boundary between Lumen's parts: the one
// error type and its kinds (what a client branches on, and the single mapping to an HTTP status),
// and the typed messages of the node-to-node protocol (package engine/peer). Server, peers and the
// Go client share them, so none re-declares a shape by hand.
//
// It imports the standard library and sdk/abi (the guest ABI's payloads, which peers exchange)
// only, so every layer above the ABI may depend on it.
package wire
