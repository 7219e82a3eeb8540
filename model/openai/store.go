package openai

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// store keeps files and batch records under a directory: files/<id>.json and files/<id>.data,
// batches/<id>.json. Every record is written to a temporary file and renamed into place, so a
// crash leaves the old record or the new one, never half of one. It is safe for concurrent use.
type store struct {
	dir string
	mu  sync.Mutex
}

func newStore(dir string) (*store, error) {
	for _, sub := range []string{"files", "batches"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("openai store: %w", err)
		}
	}
	return &store{dir: dir}, nil
}

// newID returns prefix followed by 24 random hex digits.
func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// validID keeps ids to the alphabet newID uses, so an id from a URL cannot name a path.
func validID(id, prefix string) bool {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || len(rest) == 0 || len(rest) > 64 {
		return false
	}
	for _, c := range rest {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

var errNotFound = errors.New("not found")

// putFile stores r's bytes (at most limit; more fails with errTooLarge) as a new file.
func (s *store) putFile(f File, r io.Reader, limit int64) (File, error) {
	f.ID = newID("file-")
	f.Object = "file"
	f.Status = "processed"
	tmp, err := os.CreateTemp(filepath.Join(s.dir, "files"), ".tmp-*")
	if err != nil {
		return File{}, err
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, io.LimitReader(r, limit+1))
	if err == nil && n > limit {
		err = errTooLarge
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return File{}, err
	}
	f.Bytes = n
	if err := os.Rename(tmp.Name(), s.filePath(f.ID, ".data")); err != nil {
		return File{}, err
	}
	meta, _ := json.Marshal(f)
	if err := writeAtomic(s.filePath(f.ID, ".json"), meta); err != nil {
		return File{}, err
	}
	return f, nil
}

var errTooLarge = errors.New("too large")

func (s *store) filePath(id, ext string) string {
	return filepath.Join(s.dir, "files", id+ext)
}

func (s *store) getFile(id string) (File, error) {
	if !validID(id, "file-") {
		return File{}, errNotFound
	}
	b, err := os.ReadFile(s.filePath(id, ".json"))
	if errors.Is(err, os.ErrNotExist) {
		return File{}, errNotFound
	}
	if err != nil {
		return File{}, err
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		return File{}, fmt.Errorf("file record %s: %w", id, err)
	}
	return f, nil
}

func (s *store) openFile(id string) (*os.File, error) {
	if _, err := s.getFile(id); err != nil {
		return nil, err
	}
	return os.Open(s.filePath(id, ".data"))
}

func (s *store) readFile(id string, limit int64) ([]byte, error) {
	fh, err := s.openFile(id)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err == nil && int64(len(b)) > limit {
		return nil, errTooLarge
	}
	return b, err
}

func (s *store) deleteFile(id string) error {
	if _, err := s.getFile(id); err != nil {
		return err
	}
	if err := os.Remove(s.filePath(id, ".json")); err != nil {
		return err
	}
	return os.Remove(s.filePath(id, ".data"))
}

func (s *store) listFiles() ([]File, error) {
	names, err := filepath.Glob(filepath.Join(s.dir, "files", "file-*.json"))
	if err != nil {
		return nil, err
	}
	out := []File{}
	for _, n := range names {
		f, err := s.getFile(strings.TrimSuffix(filepath.Base(n), ".json"))
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt > out[j].CreatedAt })
	return out, nil
}

func (s *store) putBatch(b *Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, err := json.Marshal(b)
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(s.dir, "batches", b.ID+".json"), data)
}

func (s *store) getBatch(id string) (*Batch, error) {
	if !validID(id, "batch_") {
		return nil, errNotFound
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	data, err := os.ReadFile(filepath.Join(s.dir, "batches", id+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	var b Batch
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("batch record %s: %w", id, err)
	}
	return &b, nil
}

func (s *store) listBatches() ([]*Batch, error) {
	names, err := filepath.Glob(filepath.Join(s.dir, "batches", "batch_*.json"))
	if err != nil {
		return nil, err
	}
	out := []*Batch{}
	for _, n := range names {
		b, err := s.getBatch(strings.TrimSuffix(filepath.Base(n), ".json"))
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt > out[j].CreatedAt })
	return out, nil
}
