package api

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serveLimits serves h with deadlines and limits l on loopback, as HTTPServer does.
func serveLimits(t *testing.T, h http.Handler, l HTTPLimits) string {
	t.Helper()
	l = l.withDefaults()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: deadlines(h, l), ReadHeaderTimeout: l.ReadHeaderTimeout, IdleTimeout: l.IdleTimeout, MaxHeaderBytes: l.MaxHeaderBytes}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

// The body and write deadlines cut slow clients, not slow answers: a handler that reads its body
// and then works past both timeouts keeps its context and answers; a stream longer than the
// write timeout reaches its end; a trickled body is cut at the body timeout; a client that does
// not read is cut at the write timeout.
func TestDeadlines_CutSlowClientsNotLongAnswers(t *testing.T) {
	const d = 500 * time.Millisecond
	l := HTTPLimits{BodyTimeout: d, WriteTimeout: d}
	bodyErr := make(chan error, 1)
	writeErr := make(chan time.Duration, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/long", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case <-time.After(3 * d):
			fmt.Fprintf(w, "read %d, worked 3 timeouts", len(b))
		case <-r.Context().Done():
			http.Error(w, "context cancelled", 500)
		}
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		for i := range 6 {
			fmt.Fprintf(w, "event %d\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(d / 2)
		}
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		bodyErr <- err
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		chunk := bytes.Repeat([]byte("x"), 1<<20)
		for range 256 {
			if _, err := w.Write(chunk); err != nil {
				break
			}
		}
		writeErr <- time.Since(start)
	})
	addr := serveLimits(t, mux, l)

	resp, err := http.Post("http://"+addr+"/long", "text/plain", strings.NewReader("some body"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "read 9, worked 3 timeouts" {
		t.Fatalf("long answer: %d %s", resp.StatusCode, b)
	}

	resp, err = http.Get("http://" + addr + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Count(string(b), "event") != 6 {
		t.Fatalf("stream over 3 write timeouts: %q", b)
	}

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\npart of it")
	start := time.Now()
	select {
	case err := <-bodyErr:
		if err == nil || time.Since(start) > 3*d {
			t.Fatalf("trickled body: %v after %v", err, time.Since(start))
		}
	case <-time.After(10 * d):
		t.Fatal("trickled body still read after 10 body timeouts")
	}
	conn.SetReadDeadline(time.Now().Add(10 * d))
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Fatalf("connection of a trickled body not closed: %v", err)
	}

	// A client that sends its request and never reads the 256 MiB answer.
	conn2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	conn2.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn2, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	bufio.NewReader(conn2).Peek(1)
	select {
	case took := <-writeErr:
		if took > 4*d {
			t.Fatalf("a client not reading held a write for %v", took)
		}
	case <-time.After(20 * d):
		t.Fatal("a client not reading held the handler past 20 write timeouts")
	}
}

// HTTPServer carries the configured limits; zero fields take the documented defaults.
func TestHTTPLimits_Defaults(t *testing.T) {
	l := HTTPLimits{BodyTimeout: time.Minute}.withDefaults()
	want := HTTPLimits{ReadHeaderTimeout: DefaultReadHeaderTimeout, BodyTimeout: time.Minute, WriteTimeout: DefaultWriteTimeout,
		IdleTimeout: DefaultIdleTimeout, MaxHeaderBytes: DefaultMaxHeaderBytes}
	if l != want {
		t.Fatalf("%+v, want %+v", l, want)
	}
	s := &Server{cfg: Config{HTTP: l}}
	hs := s.HTTPServer(nil)
	if hs.ReadHeaderTimeout != l.ReadHeaderTimeout || hs.IdleTimeout != l.IdleTimeout || hs.MaxHeaderBytes != l.MaxHeaderBytes ||
		hs.ReadTimeout != 0 || hs.WriteTimeout != 0 {
		t.Fatalf("http.Server %+v from %+v", hs, l)
	}
}
