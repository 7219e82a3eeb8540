package host

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"time"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/sys"
)

// rootFS is a WASI file system confined to one host directory by os.Root: no path, "..", or
// symbolic link (followed at any component, created by the guest or not) resolves outside it,
// and the check cannot be raced by swapping a directory for a link. wazero's own DirFS joins
// paths and lets the OS follow links, which escapes a mount through a symlink.
//
// A rootFS is used by one instance, whose calls run one at a time.
type rootFS struct {
	experimentalsys.UnimplementedFS
	root *os.Root
}

// mountFS returns the WASI file system for a directory grant, and the os.Root to close with the
// instance.
func mountFS(d DirGrant) (experimentalsys.FS, *os.Root, error) {
	root, err := os.OpenRoot(d.HostPath)
	if err != nil {
		return nil, nil, err
	}
	var fsys experimentalsys.FS = &rootFS{root: root}
	if !d.Writable {
		fsys = &sysfs.ReadFS{FS: fsys}
	}
	return fsys, root, nil
}

// rel turns a WASI path (relative, cleaned by wazero, maybe with a trailing slash) into a name
// for os.Root, and says whether it named a directory.
func rel(p string) (name string, dir bool) {
	if strings.HasSuffix(p, "/") {
		p, dir = strings.TrimRight(p, "/"), true
	}
	if p == "" {
		p = "."
	}
	return p, dir
}

// errnoOf maps an error of os.Root to a WASI errno. Errors without an errno, such as os.Root's
// "path escapes from parent", read as EPERM.
func errnoOf(err error) experimentalsys.Errno {
	if err == nil {
		return 0
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		return experimentalsys.UnwrapOSError(en)
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return experimentalsys.ENOENT
	case errors.Is(err, fs.ErrExist):
		return experimentalsys.EEXIST
	case errors.Is(err, fs.ErrClosed):
		return experimentalsys.EBADF
	case errors.Is(err, fs.ErrInvalid):
		return experimentalsys.EINVAL
	}
	return experimentalsys.EPERM
}

func osFlag(f experimentalsys.Oflag) int {
	var o int
	switch f & (experimentalsys.O_RDONLY | experimentalsys.O_WRONLY | experimentalsys.O_RDWR) {
	case experimentalsys.O_WRONLY:
		o = os.O_WRONLY
	case experimentalsys.O_RDWR:
		o = os.O_RDWR
	default:
		o = os.O_RDONLY
	}
	if f&experimentalsys.O_APPEND != 0 {
		o |= os.O_APPEND
	}
	if f&experimentalsys.O_CREAT != 0 {
		o |= os.O_CREATE
	}
	if f&experimentalsys.O_EXCL != 0 {
		o |= os.O_EXCL
	}
	if f&experimentalsys.O_TRUNC != 0 {
		o |= os.O_TRUNC
	}
	if f&(experimentalsys.O_SYNC|experimentalsys.O_DSYNC|experimentalsys.O_RSYNC) != 0 {
		o |= os.O_SYNC
	}
	return o
}

// OpenFile implements experimentalsys.FS.
func (r *rootFS) OpenFile(p string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	name, wantDir := rel(p)
	if flag&experimentalsys.O_DIRECTORY != 0 {
		wantDir = true
	}
	if flag&experimentalsys.O_NOFOLLOW != 0 {
		if st, err := r.root.Lstat(name); err == nil && st.Mode()&fs.ModeSymlink != 0 {
			return nil, experimentalsys.ELOOP
		}
	}
	f, err := r.root.OpenFile(name, osFlag(flag), perm)
	if err != nil {
		return nil, errnoOf(err)
	}
	if wantDir {
		if fi, err := f.Stat(); err != nil || !fi.IsDir() {
			_ = f.Close()
			if err != nil {
				return nil, errnoOf(err)
			}
			return nil, experimentalsys.ENOTDIR
		}
	}
	return newRootFile(r, name, flag, perm, f)
}

// Lstat implements experimentalsys.FS.
func (r *rootFS) Lstat(p string) (sys.Stat_t, experimentalsys.Errno) {
	name, _ := rel(p)
	fi, err := r.root.Lstat(name)
	if err != nil {
		return sys.Stat_t{}, errnoOf(err)
	}
	return sys.NewStat_t(fi), 0
}

// Stat implements experimentalsys.FS.
func (r *rootFS) Stat(p string) (sys.Stat_t, experimentalsys.Errno) {
	name, _ := rel(p)
	fi, err := r.root.Stat(name)
	if err != nil {
		return sys.Stat_t{}, errnoOf(err)
	}
	return sys.NewStat_t(fi), 0
}

// Mkdir implements experimentalsys.FS.
func (r *rootFS) Mkdir(p string, perm fs.FileMode) experimentalsys.Errno {
	name, _ := rel(p)
	return errnoOf(r.root.Mkdir(name, perm))
}

// Chmod implements experimentalsys.FS.
func (r *rootFS) Chmod(p string, perm fs.FileMode) experimentalsys.Errno {
	name, _ := rel(p)
	return errnoOf(r.root.Chmod(name, perm))
}

// Rename implements experimentalsys.FS.
func (r *rootFS) Rename(from, to string) experimentalsys.Errno {
	f, _ := rel(from)
	t, _ := rel(to)
	return errnoOf(r.root.Rename(f, t))
}

// Rmdir implements experimentalsys.FS.
func (r *rootFS) Rmdir(p string) experimentalsys.Errno {
	name, _ := rel(p)
	fi, err := r.root.Lstat(name)
	if err != nil {
		return errnoOf(err)
	}
	if !fi.IsDir() {
		return experimentalsys.ENOTDIR
	}
	return errnoOf(r.root.Remove(name))
}

// Unlink implements experimentalsys.FS.
func (r *rootFS) Unlink(p string) experimentalsys.Errno {
	name, _ := rel(p)
	fi, err := r.root.Lstat(name)
	if err != nil {
		return errnoOf(err)
	}
	if fi.IsDir() {
		return experimentalsys.EISDIR
	}
	return errnoOf(r.root.Remove(name))
}

// Link implements experimentalsys.FS.
func (r *rootFS) Link(oldPath, newPath string) experimentalsys.Errno {
	o, _ := rel(oldPath)
	n, _ := rel(newPath)
	return errnoOf(r.root.Link(o, n))
}

// Symlink implements experimentalsys.FS. The link may point anywhere; os.Root refuses to follow
// it out of the directory later.
func (r *rootFS) Symlink(oldPath, linkName string) experimentalsys.Errno {
	if strings.HasPrefix(oldPath, "/") {
		return experimentalsys.EPERM
	}
	n, _ := rel(linkName)
	return errnoOf(r.root.Symlink(oldPath, n))
}

// Readlink implements experimentalsys.FS.
func (r *rootFS) Readlink(p string) (string, experimentalsys.Errno) {
	name, _ := rel(p)
	dst, err := r.root.Readlink(name)
	if err != nil {
		return "", errnoOf(err)
	}
	return dst, 0
}

// Utimens implements experimentalsys.FS.
func (r *rootFS) Utimens(p string, atim, mtim int64) experimentalsys.Errno {
	name, _ := rel(p)
	fi, err := r.root.Stat(name)
	if err != nil {
		return errnoOf(err)
	}
	at, mt := utimes(fi, atim, mtim)
	return errnoOf(r.root.Chtimes(name, at, mt))
}

// utimes resolves UTIME_OMIT against the file's current times (wazero resolves "now" itself).
func utimes(fi fs.FileInfo, atim, mtim int64) (time.Time, time.Time) {
	st := sys.NewStat_t(fi)
	pick := func(v, cur int64) time.Time {
		if v == experimentalsys.UTIME_OMIT {
			return time.Unix(0, cur)
		}
		return time.Unix(0, v)
	}
	return pick(atim, st.Atim), pick(mtim, st.Mtim)
}

// rootFile is a file opened through a rootFS. Reading, writing, seeking and listing are wazero's
// own adapter over the *os.File (reopening a directory to rewind it goes through os.Root again);
// rootFile adds what the adapter leaves out.
type rootFile struct {
	experimentalsys.File
	fs     *rootFS
	name   string
	f      *os.File
	append bool // opened with O_APPEND
}

// openedFS hands wazero's adapter a file already opened through os.Root, then reopens by name
// through os.Root (read-only) when the adapter rewinds a directory.
type openedFS struct {
	root  *os.Root
	first *os.File
}

func (o *openedFS) Open(name string) (fs.File, error) {
	if f := o.first; f != nil {
		o.first = nil
		return f, nil
	}
	return o.root.Open(name)
}

func newRootFile(r *rootFS, name string, flag experimentalsys.Oflag, perm fs.FileMode, f *os.File) (*rootFile, experimentalsys.Errno) {
	adapter := &sysfs.AdaptFS{FS: &openedFS{root: r.root, first: f}}
	// The adapter refuses O_DIRECTORY with a write mode; the rest of flag was applied by os.Root.
	file, errno := adapter.OpenFile(name, flag&experimentalsys.O_DIRECTORY, perm)
	if errno != 0 {
		_ = f.Close()
		return nil, errno
	}
	return &rootFile{File: file, fs: r, name: name, f: f, append: flag&experimentalsys.O_APPEND != 0}, 0
}

// IsAppend implements experimentalsys.File.
func (f *rootFile) IsAppend() bool { return f.append }

// Truncate implements experimentalsys.File.
func (f *rootFile) Truncate(size int64) experimentalsys.Errno {
	if size < 0 {
		return experimentalsys.EINVAL
	}
	return f.fileErr(f.f.Truncate(size))
}

// Sync implements experimentalsys.File.
func (f *rootFile) Sync() experimentalsys.Errno { return f.fileErr(f.f.Sync()) }

// Datasync implements experimentalsys.File.
func (f *rootFile) Datasync() experimentalsys.Errno { return f.Sync() }

// Utimens implements experimentalsys.File.
func (f *rootFile) Utimens(atim, mtim int64) experimentalsys.Errno {
	fi, err := f.f.Stat()
	if err != nil {
		return f.fileErr(err)
	}
	at, mt := utimes(fi, atim, mtim)
	return errnoOf(f.fs.root.Chtimes(f.name, at, mt))
}

// fileErr maps errors of an open file: a directory's write errors read as EISDIR.
func (f *rootFile) fileErr(err error) experimentalsys.Errno {
	if err == nil {
		return 0
	}
	errno := errnoOf(err)
	if errno == experimentalsys.EBADF || errno == experimentalsys.EINVAL {
		if fi, serr := f.f.Stat(); serr == nil && fi.IsDir() {
			return experimentalsys.EISDIR
		}
	}
	return errno
}
