// Package tokens keeps the API's scoped tokens in the replicated state, so that every node of a
// cluster admits the same ones: one record per token under tok/<id> with its namespace, its
// access and the SHA-256 of the token, never the token itself. It knows no HTTP.
//
// It may import engine/wire and raftstore.
package tokens

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/raftstore"
)

// A token is Prefix, its id (IDLen lowercase hex digits), '_', and its secret (SecretLen
// lowercase hex digits): "lmt_0123456789abcdef_<64 hex>". The id names the record, so checking a
// token reads one key; the record keeps the SHA-256 of the whole token.
const (
	Prefix    = "lmt_"
	IDLen     = 16 // 8 random bytes
	SecretLen = 64 // 32 random bytes
	// Len is the length of every token.
	Len = len(Prefix) + IDLen + 1 + SecretLen
)

// Limits on a token's fields.
const (
	// MaxNamespaceLen is jobs' limit on a namespace's name (engine/jobs.MaxNamespaceLen).
	MaxNamespaceLen = 64
	MaxNoteLen      = 256
)

// keyPrefix starts the records' keys in the replicated state.
const keyPrefix = "tok/"

// Access is what a namespace token may do within its namespace.
type Access string

// Accesses.
const (
	Read  Access = "read"  // GET only
	Write Access = "write" // submit, stop, put, call
)

// Sentinel errors of tokens.
var (
	// ErrInvalid is returned by Check for a token that is malformed, unknown or revoked. It says
	// no more, so that a guess learns nothing.
	ErrInvalid = wire.Wrap(wire.KindUnauthorized, errors.New("tokens: invalid token"))
	// ErrNotFound is returned by Revoke for an unknown id.
	ErrNotFound = wire.Wrap(wire.KindNotFound, errors.New("tokens: no such token"))
)

// Token is a token's record as the API lists it: everything but the secret.
type Token struct {
	ID        string    `json:"id"`
	Namespace string    `json:"namespace"`
	Access    Access    `json:"access"`
	Note      string    `json:"note,omitempty"`
	Created   time.Time `json:"created"`
}

// record is what the replicated state holds: the token's fields and the hex SHA-256 of the
// token.
type record struct {
	Token
	SHA256 string `json:"sha256"`
}

func key(id string) []byte { return []byte(keyPrefix + id) }

// Store reads and writes the token records through a raft node. It holds no state of its own and
// is safe for concurrent use.
type Store struct {
	node *raftstore.Node
	// CatchUp bounds the wait for the leader when a well-formed token is not known here yet
	// (created on another node a moment ago); default 2 s.
	CatchUp time.Duration
}

// New returns the store of node's replicated state.
func New(node *raftstore.Node) *Store { return &Store{node: node, CatchUp: 2 * time.Second} }

// Spec is a token to create.
type Spec struct {
	Namespace string `json:"namespace"`
	Access    Access `json:"access"`
	Note      string `json:"note,omitempty"`
}

// Validate checks a spec and names the field at fault. It reads nothing but s.
func (s Spec) Validate() error {
	if err := ValidNamespace(s.Namespace); err != nil {
		return err
	}
	if s.Access != Read && s.Access != Write {
		return fmt.Errorf("access %q: read or write", s.Access)
	}
	if len(s.Note) > MaxNoteLen || !utf8.ValidString(s.Note) {
		return fmt.Errorf("note: at most %d bytes of UTF-8", MaxNoteLen)
	}
	return nil
}

// ValidNamespace checks a namespace's name as jobs does: 1 to MaxNamespaceLen letters, digits,
// '.', '_' and '-', starting with a letter or digit.
func ValidNamespace(s string) error {
	if s == "" || len(s) > MaxNamespaceLen {
		return fmt.Errorf("namespace: 1 to %d characters, not %d", MaxNamespaceLen, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || (i > 0 && (c == '.' || c == '_' || c == '-'))
		if !ok {
			return fmt.Errorf("namespace %q: only letters, digits, '.', '_' and '-', starting with a letter or digit", s)
		}
	}
	return nil
}

// Parse splits a token into its id, checking its form only: Prefix, IDLen lowercase hex
// digits, '_', SecretLen lowercase hex digits. It reads nothing but tok.
func Parse(tok string) (id string, err error) {
	if len(tok) != Len || !strings.HasPrefix(tok, Prefix) || tok[len(Prefix)+IDLen] != '_' {
		return "", ErrInvalid
	}
	id, secret := tok[len(Prefix):len(Prefix)+IDLen], tok[len(Prefix)+IDLen+1:]
	if !lowerHex(id) || !lowerHex(secret) {
		return "", ErrInvalid
	}
	return id, nil
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func hash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// Create records a new token and returns it with its record. The token is not kept anywhere:
// the caller hands it out once. If ctx expires the write may still commit; the token is then
// recorded but unknown to anyone, and an admin revokes it by the id the list shows.
func (s *Store) Create(ctx context.Context, spec Spec, now time.Time) (string, *Token, error) {
	if err := spec.Validate(); err != nil {
		return "", nil, wire.Wrap(wire.KindBadInput, err)
	}
	var raw [IDLen/2 + SecretLen/2]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", nil, err
	}
	id := hex.EncodeToString(raw[:IDLen/2])
	tok := Prefix + id + "_" + hex.EncodeToString(raw[IDLen/2:])
	rec := record{Token: Token{ID: id, Namespace: spec.Namespace, Access: spec.Access, Note: spec.Note, Created: now.UTC()}, SHA256: hash(tok)}
	b, err := json.Marshal(rec)
	if err != nil {
		return "", nil, err
	}
	err = s.node.Apply(ctx, &raftstore.Command{Conds: []raftstore.Cond{{Key: key(id), Absent: true}},
		Ops: []raftstore.Op{{Kind: raftstore.OpSet, Key: key(id), Value: b}}})
	if err != nil {
		// A conflict is a 64-bit id drawn twice: the caller may simply ask again.
		return "", nil, fmt.Errorf("tokens: create: %w", err)
	}
	return tok, &rec.Token, nil
}

// List returns every token's record, without secrets, in id order, read linearizably.
func (s *Store) List(ctx context.Context) ([]Token, error) {
	recs, err := raftstore.Records[record](ctx, s.node, keyPrefix, nil)
	if err != nil {
		return nil, err
	}
	out := make([]Token, len(recs))
	for i, r := range recs {
		out[i] = r.Token
	}
	return out, nil
}

// Revoke deletes token id's record: once a node applies the deletion, it refuses the token.
func (s *Store) Revoke(ctx context.Context, id string) error {
	if len(id) != IDLen || !lowerHex(id) {
		return ErrNotFound
	}
	err := s.node.Apply(ctx, &raftstore.Command{Conds: []raftstore.Cond{{Key: key(id), Exists: true}},
		Ops: []raftstore.Op{{Kind: raftstore.OpDelete, Key: key(id)}}})
	if errors.Is(err, raftstore.ErrConflict) {
		return ErrNotFound
	}
	return err
}

// Check returns the record of tok, or ErrInvalid. It reads this node's applied state; a
// well-formed token this node does not hold yet is looked up once more after catching up with
// the leader (at most CatchUp), so a token created on another node a moment ago is admitted.
// The token's hash is compared in constant time.
func (s *Store) Check(ctx context.Context, tok string) (*Token, error) {
	id, err := Parse(tok)
	if err != nil {
		return nil, err
	}
	b, err := s.node.KV().Get(key(id))
	if errors.Is(err, raftstore.ErrKeyNotFound) {
		cctx, cancel := context.WithTimeout(ctx, s.CatchUp)
		lerr := s.node.Linearize(cctx)
		cancel()
		if lerr != nil {
			return nil, ErrInvalid
		}
		b, err = s.node.KV().Get(key(id))
	}
	if errors.Is(err, raftstore.ErrKeyNotFound) {
		return nil, ErrInvalid
	} else if err != nil {
		return nil, fmt.Errorf("tokens: read %s: %w", id, err)
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("tokens: record %s: %w", id, err)
	}
	if subtle.ConstantTimeCompare([]byte(hash(tok)), []byte(rec.SHA256)) != 1 {
		return nil, ErrInvalid
	}
	return &rec.Token, nil
}
