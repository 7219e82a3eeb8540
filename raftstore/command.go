package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// OpKind says what an Op does.
type OpKind uint8

// The kinds of Op.
const (
	// OpSet sets Key to Value.
	OpSet OpKind = 1
	// OpDelete deletes Key; deleting a missing key is not an error.
	OpDelete OpKind = 2
)

// Op is one change a Command makes to the replicated key-value state.
type Op struct {
	Kind  OpKind
	Key   []byte
	Value []byte // OpSet only
}

// Cond is a precondition of a Command, checked when the command is applied, in log order: the
// command applies only if every condition holds, and otherwise changes nothing and fails with
// ErrConflict. Conditions make check-then-write sequences safe when several nodes write at once.
type Cond struct {
	Key []byte
	// Absent requires Key not to exist; Exists requires it to exist, with any value. With
	// neither, Key must exist and hold exactly Value.
	Absent, Exists bool
	Value          []byte
}

// Command is the unit of change of the replicated key-value state: its conditions are checked
// and its operations applied atomically, on every node in the same log order.
//
// ID, when set, makes the command idempotent: a command whose ID was already applied is not
// applied again and returns the first outcome. Callers retrying a write whose outcome is unknown
// (a leader lost while the write was in flight) reuse its ID.
type Command struct {
	ID    string
	Conds []Cond
	Ops   []Op
}

// Limits on a command, checked by EncodeCommand's callers through Validate and by
// DecodeCommand on every node.
const (
	MaxKeyLen     = 1024
	MaxIDLen      = 128
	MaxCommandOps = 1 << 16
)

// internalPrefix starts the keys the state machine keeps for itself (applied index, request
// ids). User keys may not start with it.
const internalPrefix = 0x00

// ErrConflict is the outcome of a command one of whose conditions did not hold.
var ErrConflict = errors.New("raftstore: condition failed")

// ErrBadCommand wraps a command refused before it reaches the log.
var ErrBadCommand = errors.New("raftstore: bad command")

// Validate checks c against the limits and rules every node applies.
func (c *Command) Validate() error {
	if len(c.ID) > MaxIDLen || !utf8.ValidString(c.ID) {
		return fmt.Errorf("%w: request id longer than %d bytes or not UTF-8", ErrBadCommand, MaxIDLen)
	}
	if len(c.Ops)+len(c.Conds) == 0 {
		return fmt.Errorf("%w: no operations", ErrBadCommand)
	}
	if len(c.Ops)+len(c.Conds) > MaxCommandOps {
		return fmt.Errorf("%w: %d operations and conditions, the cap is %d", ErrBadCommand, len(c.Ops)+len(c.Conds), MaxCommandOps)
	}
	for i, cd := range c.Conds {
		if cd.Absent && cd.Exists {
			return fmt.Errorf("%w: condition %d: both absent and exists", ErrBadCommand, i)
		}
		if err := checkKey(cd.Key); err != nil {
			return fmt.Errorf("%w: condition %d: %v", ErrBadCommand, i, err)
		}
	}
	for i, op := range c.Ops {
		if op.Kind != OpSet && op.Kind != OpDelete {
			return fmt.Errorf("%w: operation %d: unknown kind %d", ErrBadCommand, i, op.Kind)
		}
		if op.Kind == OpDelete && len(op.Value) > 0 {
			return fmt.Errorf("%w: operation %d: a delete carries no value", ErrBadCommand, i)
		}
		if err := checkKey(op.Key); err != nil {
			return fmt.Errorf("%w: operation %d: %v", ErrBadCommand, i, err)
		}
	}
	return nil
}

func checkKey(k []byte) error {
	switch {
	case len(k) == 0:
		return errors.New("empty key")
	case len(k) > MaxKeyLen:
		return fmt.Errorf("key of %d bytes, the cap is %d", len(k), MaxKeyLen)
	case k[0] == internalPrefix:
		return errors.New("key starts with the reserved byte 0x00")
	}
	return nil
}

// commandVersion is the first byte of an encoded command.
const commandVersion = 1

// EncodeCommand encodes c (which should pass Validate) as
//
//	version(1) id(bytes) nconds(uvarint) {kind(1) key(bytes) value(bytes)}* nops(uvarint) {kind(1) key(bytes) value(bytes)}*
//
// where a condition's kind is 0 (equals), 1 (absent) or 2 (exists)
//
// where bytes is a uvarint length and that many bytes.
func EncodeCommand(c *Command) []byte {
	n := 1 + 2*maxVarintLen + len(c.ID) + maxVarintLen
	for _, cd := range c.Conds {
		n += 1 + 2*maxVarintLen + len(cd.Key) + len(cd.Value)
	}
	for _, op := range c.Ops {
		n += 1 + 2*maxVarintLen + len(op.Key) + len(op.Value)
	}
	b := make([]byte, 0, n)
	b = append(b, commandVersion)
	b = appendBytes(b, []byte(c.ID))
	b = binary.AppendUvarint(b, uint64(len(c.Conds)))
	for _, cd := range c.Conds {
		kind := byte(0)
		if cd.Absent {
			kind = 1
		} else if cd.Exists {
			kind = 2
		}
		b = append(b, kind)
		b = appendBytes(b, cd.Key)
		b = appendBytes(b, cd.Value)
	}
	b = binary.AppendUvarint(b, uint64(len(c.Ops)))
	for _, op := range c.Ops {
		b = append(b, byte(op.Kind))
		b = appendBytes(b, op.Key)
		b = appendBytes(b, op.Value)
	}
	return b
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// DecodeCommand decodes bytes written by EncodeCommand and validates the command. It reads
// bytes from the log and from other nodes: it never panics, and reports any flaw as an error
// wrapping ErrCorrupt or ErrBadCommand. The command does not alias b.
func DecodeCommand(b []byte) (*Command, error) {
	d := &decoder{b: b}
	if v := d.byte(); d.err == nil && v != commandVersion {
		return nil, fmt.Errorf("%w: command version %d, this build reads %d", ErrCorrupt, v, commandVersion)
	}
	c := &Command{ID: string(d.bytes())}
	nc := d.count()
	for i := uint64(0); i < nc && d.err == nil; i++ {
		kind := d.byte()
		if kind > 2 {
			d.fail("condition %d: kind %d", i, kind)
		}
		c.Conds = append(c.Conds, Cond{Absent: kind == 1, Exists: kind == 2, Key: d.bytes(), Value: d.bytes()})
	}
	no := d.count()
	for i := uint64(0); i < no && d.err == nil; i++ {
		k := OpKind(d.byte())
		c.Ops = append(c.Ops, Op{Kind: k, Key: d.bytes(), Value: d.bytes()})
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, d.err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// count reads a count and refuses one that cannot fit in what is left (each item takes at least
// three bytes) or passes MaxCommandOps.
func (d *decoder) count() uint64 {
	n := d.uvarint()
	if d.err == nil && (n > MaxCommandOps || n > uint64(len(d.b))/3+1) {
		d.fail("count %d exceeds what is left or the cap", n)
	}
	return n
}
