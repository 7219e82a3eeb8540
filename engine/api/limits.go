package api

import (
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"time"
)

// Defaults of HTTPLimits, applied by New to its zero fields.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultBodyTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
)

// HTTPLimits bound what one connection to the API may hold of the server. They apply to every
// route of the listener: the public API, the node-to-node routes and the OpenAI-compatible API.
//
// A request's body has BodyTimeout from the end of its headers to arrive in full, whatever
// its size: a client that declares a body and trickles it, or stops, is cut at that deadline.
// The deadline ends when the body has been read, so a handler that then waits (?wait=true,
// ?timeout_ms=, a long call) is not cut by it. Writes have a deadline counted from each write,
// not from the request: a response may take as long as its call takes, and a stream as long as
// it streams, but a client that does not read for WriteTimeout is cut. http.Server's own
// ReadTimeout and WriteTimeout are not used: both count from the start of the request, so they
// would cut long calls, and an expired ReadTimeout cancels the context of a handler still
// running.
type HTTPLimits struct {
	// ReadHeaderTimeout bounds reading a request's headers (default 10 s).
	ReadHeaderTimeout time.Duration
	// BodyTimeout bounds reading a request's body, from the end of its headers (default 30 s).
	BodyTimeout time.Duration
	// WriteTimeout bounds each write of a response (default 60 s).
	WriteTimeout time.Duration
	// IdleTimeout closes a kept-alive connection that sends no request for that long (default
	// 60 s).
	IdleTimeout time.Duration
	// MaxHeaderBytes caps a request's header block (default 64 KiB; net/http answers 431 past it).
	MaxHeaderBytes int
}

func (l HTTPLimits) withDefaults() HTTPLimits {
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if l.BodyTimeout <= 0 {
		l.BodyTimeout = DefaultBodyTimeout
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = DefaultWriteTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return l
}

// HTTPServer returns the http.Server that serves s with its HTTPLimits; tlsConfig may be nil.
// The caller serves it (Serve or ServeTLS) and shuts it down.
func (s *Server) HTTPServer(tlsConfig *tls.Config) *http.Server {
	l := s.cfg.HTTP
	return &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		TLSConfig:         tlsConfig,
	}
}

// deadlines sets each request's body and write deadlines (see HTTPLimits) around h.
func deadlines(h http.Handler, l HTTPLimits) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		now := time.Now()
		// Errors are ignored: a writer without deadlines (a test's recorder) serves as it is.
		_ = rc.SetWriteDeadline(now.Add(l.WriteTimeout)) // also covers a "100 Continue"
		if r.Body != nil && r.Body != http.NoBody {
			if rc.SetReadDeadline(now.Add(l.BodyTimeout)) == nil {
				r.Body = &bodyDeadline{ReadCloser: r.Body, rc: rc}
			}
		}
		dw := &deadlineWriter{ResponseWriter: w, rc: rc, d: l.WriteTimeout}
		h.ServeHTTP(dw, r)
		// What the handler left buffered is flushed after it returns: give that its own time.
		_ = rc.SetWriteDeadline(time.Now().Add(l.WriteTimeout))
	})
}

// bodyDeadline lifts a request's read deadline once its body has been read to the end, so that
// the connection's watch for a client gone away (which net/http starts then) has no deadline.
type bodyDeadline struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *bodyDeadline) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// deadlineWriter renews the connection's write deadline before each write and flush.
type deadlineWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func (w *deadlineWriter) renew() { _ = w.rc.SetWriteDeadline(time.Now().Add(w.d)) }

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.renew()
	return w.ResponseWriter.Write(p)
}

// Flush implements http.Flusher (streamed responses flush each event).
func (w *deadlineWriter) Flush() {
	w.renew()
	_ = w.rc.Flush()
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
