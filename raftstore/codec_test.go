package raftstore

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

type badgerTxn = badger.Txn

func TestEncodeLog_RoundTrips(t *testing.T) {
	for _, l := range []*raft.Log{
		{},
		mkLog(1),
		{Index: ^uint64(0), Term: ^uint64(0), Type: raft.LogBarrier, Data: []byte{0}, Extensions: bytes.Repeat([]byte("e"), 300)},
		{Index: 2, AppendedAt: time.Unix(-5, 999999999)},
		{Index: 3, AppendedAt: time.Date(2262, 1, 1, 0, 0, 0, 1, time.UTC)},
	} {
		got, err := DecodeLog(EncodeLog(l))
		if err != nil || !sameLog(got, *l) {
			t.Fatalf("round trip of %+v = %+v, %v", *l, got, err)
		}
	}
}

func TestDecodeLog_RejectsDamage(t *testing.T) {
	good := EncodeLog(mkLog(9))
	cases := map[string][]byte{
		"empty":       nil,
		"version":     append([]byte{2}, good[1:]...),
		"truncated":   good[:len(good)-1],
		"trailing":    append(append([]byte{}, good...), 0),
		"huge length": {1, 1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"time flag":   {1, 1, 1, 0, 0, 0, 2},
		"nanos":       {1, 1, 1, 0, 0, 0, 1, 0, 0x80, 0x94, 0xeb, 0xdc, 0x03},
	}
	for name, b := range cases {
		if _, err := DecodeLog(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: DecodeLog = %v, want ErrCorrupt", name, err)
		}
	}
}

func TestEncodeBatch_RoundTrips(t *testing.T) {
	for _, cmds := range [][][]byte{
		{},
		{{}},
		{[]byte("a"), {}, bytes.Repeat([]byte("z"), 1000)},
	} {
		got, err := DecodeBatch(EncodeBatch(cmds))
		if err != nil || len(got) != len(cmds) {
			t.Fatalf("DecodeBatch = %q, %v; want %q", got, err, cmds)
		}
		for i := range cmds {
			if !bytes.Equal(got[i], cmds[i]) {
				t.Fatalf("command %d = %q, want %q", i, got[i], cmds[i])
			}
		}
	}
	for name, b := range map[string][]byte{
		"empty":     nil,
		"version":   {9, 0},
		"count":     {1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"truncated": {1, 2, 1, 'a', 3, 'b'},
		"trailing":  {1, 1, 1, 'a', 'x'},
	} {
		if _, err := DecodeBatch(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: DecodeBatch = %v, want ErrCorrupt", name, err)
		}
	}
}

// FuzzDecodeLog feeds damaged disk bytes to the decoder: it must never panic, and whatever it
// accepts must re-encode to the same bytes.
func FuzzDecodeLog(f *testing.F) {
	for _, l := range []*raft.Log{{}, mkLog(1), mkLog(300), {Index: 5, Type: raft.LogConfiguration, Data: []byte("cfg")}} {
		f.Add(EncodeLog(l))
	}
	f.Add([]byte{1, 1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := DecodeLog(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not wrapping ErrCorrupt: %v", err)
			}
			return
		}
		if again := EncodeLog(&l); !bytes.Equal(again, b) {
			// Varints have one canonical form when written, but a reader may accept padded
			// ones; only the decoded value must survive.
			l2, err := DecodeLog(again)
			if err != nil || !sameLog(l, l2) {
				t.Fatalf("re-encode of %x changed the entry: %v", b, err)
			}
		}
	})
}

// FuzzDecodeBatch feeds replicated command batches to the decoder: it must never panic.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(EncodeBatch(nil))
	f.Add(EncodeBatch([][]byte{[]byte("put k v"), {}}))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		cmds, err := DecodeBatch(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not wrapping ErrCorrupt: %v", err)
			}
			return
		}
		if _, err := DecodeBatch(EncodeBatch(cmds)); err != nil {
			t.Fatalf("re-encode rejected: %v", err)
		}
	})
}
