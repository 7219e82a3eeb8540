package tokens_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine/tokens"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/raftstore"
)

// openStore opens a single-node raft (in-memory transport, badger in a temp dir) and its store.
func openStore(t *testing.T) (*tokens.Store, *raftstore.Node) {
	t.Helper()
	ctx := context.Background()
	n, err := raftstore.OpenNode(ctx, raftstore.NodeConfig{ID: "n1", Dir: t.TempDir(), Bootstrap: true,
		HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for !n.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("the single node does not lead")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return tokens.New(n), n
}

// A token is created, checked, listed without its secret and revoked; the replicated state holds
// its hash, not the token; a token changed in any character, or of another form, is refused.
func TestStore_CreateCheckListRevoke(t *testing.T) {
	s, n := openStore(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	tok, rec, err := s.Create(ctx, tokens.Spec{Namespace: "team-a", Access: tokens.Write, Note: "ci"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != tokens.Len || !strings.HasPrefix(tok, tokens.Prefix+rec.ID+"_") || rec.Namespace != "team-a" || rec.Access != tokens.Write || !rec.Created.Equal(now) {
		t.Fatalf("created %q %+v", tok, rec)
	}
	got, err := s.Check(ctx, tok)
	if err != nil || *got != *rec {
		t.Fatalf("check: %+v %v", got, err)
	}
	// Only the hash is stored.
	n.KV().View(func(r raftstore.Reader) error {
		return r.Scan([]byte("tok/"), func(k, v []byte) error {
			if bytes.Contains(v, []byte(tok[len(tokens.Prefix)+tokens.IDLen+1:])) {
				t.Errorf("record %s holds the secret: %s", k, v)
			}
			return nil
		})
	})
	// Every one-character change of the secret, and other forms, are refused.
	for i := len(tokens.Prefix) + tokens.IDLen + 1; i < len(tok); i++ {
		b := []byte(tok)
		b[i] = "01"[map[bool]int{true: 1}[b[i] == '0']]
		if _, err := s.Check(ctx, string(b)); !errors.Is(err, tokens.ErrInvalid) {
			t.Fatalf("secret changed at %d: %v", i, err)
		}
	}
	for _, bad := range []string{"", tok + "0", tok[:len(tok)-1], strings.ToUpper(tok), "lmt_" + strings.Repeat("0", 81)} {
		if _, err := s.Check(ctx, bad); !errors.Is(err, tokens.ErrInvalid) {
			t.Fatalf("check %q: %v", bad, err)
		}
	}
	// An unknown but well-formed token: refused after catching up.
	if _, err := s.Check(ctx, tokens.Prefix+strings.Repeat("a", tokens.IDLen)+"_"+strings.Repeat("b", tokens.SecretLen)); !errors.Is(err, tokens.ErrInvalid) {
		t.Fatalf("unknown: %v", err)
	}

	tok2, _, err := s.Create(ctx, tokens.Spec{Namespace: "team-b", Access: tokens.Read}, now)
	if err != nil {
		t.Fatal(err)
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %+v %v", list, err)
	}
	if err := s.Revoke(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Check(ctx, tok); !errors.Is(err, tokens.ErrInvalid) {
		t.Fatalf("revoked: %v", err)
	}
	if _, err := s.Check(ctx, tok2); err != nil {
		t.Fatalf("the other token after a revocation: %v", err)
	}
	if err := s.Revoke(ctx, rec.ID); !errors.Is(err, tokens.ErrNotFound) {
		t.Fatalf("revoke twice: %v", err)
	}
	if err := s.Revoke(ctx, "../x"); !errors.Is(err, tokens.ErrNotFound) {
		t.Fatalf("revoke a bad id: %v", err)
	}
}

// Bad specs are refused with the field named, as bad input, and write nothing.
func TestStore_CreateRefusesBadSpecs(t *testing.T) {
	s, _ := openStore(t)
	ctx := context.Background()
	for _, sp := range []tokens.Spec{
		{Namespace: "", Access: tokens.Read},
		{Namespace: "-a", Access: tokens.Read},
		{Namespace: "a/b", Access: tokens.Read},
		{Namespace: strings.Repeat("a", tokens.MaxNamespaceLen+1), Access: tokens.Read},
		{Namespace: "a", Access: "admin"},
		{Namespace: "a", Access: ""},
		{Namespace: "a", Access: tokens.Read, Note: strings.Repeat("n", tokens.MaxNoteLen+1)},
		{Namespace: "a", Access: tokens.Read, Note: "\xff"},
	} {
		if _, _, err := s.Create(ctx, sp, time.Now()); err == nil {
			t.Fatalf("created %+v", sp)
		} else if k, _ := wire.KindOf(err); k != wire.KindBadInput {
			t.Fatalf("%+v: kind %v (%v)", sp, k, err)
		}
	}
	if list, err := s.List(ctx); err != nil || len(list) != 0 {
		t.Fatalf("refused specs left records: %+v %v", list, err)
	}
}

// FuzzParse: Parse never panics, accepts exactly the documented form, and the id it returns is
// the token's.
func FuzzParse(f *testing.F) {
	f.Add("lmt_0123456789abcdef_" + strings.Repeat("a", 64))
	f.Add("lmt_0123456789abcdef-" + strings.Repeat("a", 64))
	f.Add("lmt_0123456789ABCDEF_" + strings.Repeat("a", 64))
	f.Add("")
	f.Add(strings.Repeat("f", 64))
	f.Fuzz(func(t *testing.T, tok string) {
		id, err := tokens.Parse(tok)
		want := len(tok) == tokens.Len && strings.HasPrefix(tok, tokens.Prefix) && tok[len(tokens.Prefix)+tokens.IDLen] == '_' &&
			strings.Trim(tok[len(tokens.Prefix):len(tokens.Prefix)+tokens.IDLen]+tok[len(tokens.Prefix)+tokens.IDLen+1:], "0123456789abcdef") == ""
		if (err == nil) != want {
			t.Fatalf("Parse(%q) = %v, want ok=%v", tok, err, want)
		}
		if err == nil && id != tok[len(tokens.Prefix):len(tokens.Prefix)+tokens.IDLen] {
			t.Fatalf("Parse(%q) id %q", tok, id)
		}
	})
}
