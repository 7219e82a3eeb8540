package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lumenflow/lumen/internal/lumentest"
)

// Slow clients cannot hold a real `lumen up`: 100 connections that declare an 8 MiB body and
// stop after part of it, and 10 that stop inside their headers, are each closed by the server
// within its configured timeout (plus slack), while a canary request answers at once meanwhile,
// and a legitimate call that runs longer than both timeouts (its body sent at once) is not cut.
func TestUp_SlowClientsAreCutAndCanaryAnswers(t *testing.T) {
	const bodyTimeout, headerTimeout = 2 * time.Second, 2 * time.Second
	const slack = 2 * time.Second
	n := lumentest.StartWith(t, "", "--http-body-timeout", bodyTimeout.String(), "--http-header-timeout", headerTimeout.String(),
		"--http-write-timeout", "2s")
	u, err := url.Parse(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	wasm, err := os.ReadFile("../../host/testdata/hostile.wasm")
	if err != nil {
		t.Fatal(err)
	}
	mod := n.Push(wasm, "hostile", "1.0.0")

	type cut struct {
		after time.Duration
		err   error
	}
	const bodies, headers = 100, 10
	results := make(chan cut, bodies+headers)
	var wg sync.WaitGroup
	open := func(first string) {
		defer wg.Done()
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			results <- cut{err: err}
			return
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, first); err != nil {
			results <- cut{err: err}
			return
		}
		start := time.Now()
		conn.SetReadDeadline(time.Now().Add(bodyTimeout + headerTimeout + 10*time.Second))
		// Whatever the server answers, the connection must end: read until EOF or a reset.
		_, err = io.Copy(io.Discard, conn)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			results <- cut{err: fmt.Errorf("still open after %v", time.Since(start).Round(time.Millisecond))}
			return
		}
		results <- cut{after: time.Since(start)}
	}
	body := fmt.Sprintf("POST /v1/tasks HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"module\":\"",
		u.Host, n.Token, 8<<20)
	for range bodies {
		wg.Add(1)
		go open(body)
	}
	for range headers {
		wg.Add(1)
		go open(fmt.Sprintf("GET /v1/status HTTP/1.1\r\nHost: %s\r\nAuthorization: Bear", u.Host))
	}

	// Meanwhile: the canary answers at once, and a call longer than the timeouts runs to its end.
	time.Sleep(200 * time.Millisecond)
	c := n.Client()
	start := time.Now()
	if _, err := c.Status(context.Background()); err != nil || time.Since(start) > time.Second {
		t.Errorf("canary: %v after %v", err, time.Since(start))
	}
	start = time.Now()
	err = c.JSON(context.Background(), "POST", "/v1/modules/"+mod.Digest+"/call/loop?timeout_ms=3500", []byte("x"), nil)
	if err == nil || !strings.Contains(err.Error(), "deadline") || time.Since(start) < 3500*time.Millisecond {
		t.Errorf("a 3.5 s call under 2 s body and write timeouts: %v after %v, want its own deadline", err, time.Since(start))
	}

	wg.Wait()
	close(results)
	var worst time.Duration
	for r := range results {
		if r.err != nil {
			t.Errorf("slow client: %v", r.err)
			continue
		}
		worst = max(worst, r.after)
	}
	t.Logf("%d slow bodies and %d slow headers: the last closed %v after it stopped sending", bodies, headers, worst.Round(time.Millisecond))
	if worst > bodyTimeout+slack {
		t.Errorf("slowest cut after %v, want within %v", worst, bodyTimeout+slack)
	}
	if _, err := http.Get(n.URL + "/healthz"); err != nil {
		t.Errorf("healthz after: %v", err)
	}
}
