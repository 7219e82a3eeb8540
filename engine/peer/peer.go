// Package peer owns Lumen's node-to-node protocol: the routes under /peer/<wire.Version>/ that
// one node of a cluster serves to the others (placed tasks and actors, object values, forwarded
// raft writes and reads, joins, heartbeats), the credential that admits a node to them, and the
// typed client that calls them. Its messages are package engine/wire's.
//
// Nodes authenticate with the cluster's node credential (Credential), which every node derives
// from the join token it holds, plus a verified client certificate when the cluster uses mutual
// TLS. The public API's tokens do not admit a request to these routes, and the node credential
// admits none to the public API.
//
// It may import engine/wire and sdk/abi, and gin; never package engine, which implements Handler
// and mounts the routes through engine/api.
package peer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"

	"github.com/lumenflow/lumen/engine/wire"
)

// credentialLabel is what Credential signs: a fixed label, so the credential proves the join
// token without being it (the join token never travels after the join).
const credentialLabel = "lumen peer credential v1"

// Credential is the node credential of the cluster whose join token is joinToken: the hex
// HMAC-SHA256 of a fixed label keyed by the token. Nodes send it as "Authorization: Bearer …".
func Credential(joinToken string) string {
	m := hmac.New(sha256.New, []byte(joinToken))
	m.Write([]byte(credentialLabel))
	return hex.EncodeToString(m.Sum(nil))
}

// Prefix is the path every route of this protocol version starts with.
const Prefix = "/peer/" + wire.Version

// VersionHeader is set to wire.Version on every answer of the peer routes. An answer without it
// comes from something that does not speak this version (an older or newer node, a proxy), and
// the client reports ErrVersion instead of reading it.
const VersionHeader = "Lumen-Peer-Version"

// Errors of the client that are not a peer's answer: the caller treats the node as failed (it
// places the work again elsewhere, or retries), unlike a *wire.Error, which is the node's verdict.
var (
	// ErrUnreachable wraps a request that got no answer: no connection, a reset, a timeout, or a
	// body cut short.
	ErrUnreachable = wire.Wrap(wire.KindUnavailable, errors.New("peer: the node did not answer"))
	// ErrVersion wraps an answer from something that does not speak this protocol version.
	ErrVersion = wire.Wrap(wire.KindUnavailable, errors.New("peer: the node does not speak peer protocol "+wire.Version))
	// ErrBadAnswer wraps an answer that does not hold what the route promises (bad JSON, a
	// checksum or length that does not match the bytes).
	ErrBadAnswer = wire.Wrap(wire.KindUnavailable, errors.New("peer: the node's answer is malformed"))
)
