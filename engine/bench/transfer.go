package bench

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// objectPull is the transfer of an object between nodes on loopback: GET /v1/objects/{ref} of a
// PutBytes object from a node's API, the way a node fetches a result from the node that ran the
// task, read to the end; beside it, a raw TCP copy of the same bytes on loopback.
func objectPull(b *env) (*Result, error) {
	rs, err := b.restServer()
	if err != nil {
		return nil, err
	}
	size := b.opts.PutBytes
	src := make([]byte, size)
	for i := range src {
		src[i] = byte(i*13 + 5)
	}
	h, err := b.eng.Objects().Put(b.job, src)
	if err != nil {
		return nil, err
	}
	defer b.eng.Objects().Release(b.job, h)
	url := fmt.Sprintf("%s/v1/objects/%d?job=%s", rs.c.URL, h, b.job)
	buf := make([]byte, 1<<20)
	pull := one(func() (int, error) {
		req, err := http.NewRequestWithContext(b.ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+rs.c.Token)
		resp, err := rs.c.HTTP.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		n, err := io.CopyBuffer(io.Discard, resp.Body, buf)
		if err != nil || resp.StatusCode != http.StatusOK || n != int64(size) {
			return 0, fmt.Errorf("GET object: status %d, %d of %d bytes, %v", resp.StatusCode, n, size, err)
		}
		return 1, nil
	})

	// The baseline: a loopback TCP connection that copies the same bytes, with no HTTP.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var one [1]byte
				for {
					if _, err := io.ReadFull(c, one[:]); err != nil {
						return
					}
					if _, err := c.Write(src); err != nil {
						return
					}
				}
			}()
		}
	}()
	conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(b.ctx, "tcp", ln.Addr().String())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	raw := one(func() (int, error) {
		if _, err := conn.Write([]byte{1}); err != nil {
			return 0, err
		}
		if _, err := io.CopyBuffer(io.Discard, io.LimitReader(conn, int64(size)), buf); err != nil {
			return 0, err
		}
		return 1, nil
	})
	pulls, copies, err := compare(b.ctx, b.opts.Duration, pull, raw)
	if err != nil {
		return nil, err
	}
	gb := float64(size) / 1e9
	return &Result{
		Value: pulls * gb, Unit: UnitGBs,
		Baseline: &Figure{Name: "raw_tcp_copy_loopback", Value: copies * gb, Unit: UnitGBs},
		Notes:    fmt.Sprintf("GET /v1/objects of a %d MiB object over loopback HTTP, as a node pulls another's result, read to the end", size>>20),
	}, nil
}
