package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestDo_ErrorAnswers checks the client reads every error answer into one *Error whose Kind a
// caller can branch on: Lumen's error body, and a body from something else in the way (a proxy's
// HTML page, an empty 502).
func TestDo_ErrorAnswers(t *testing.T) {
	cases := []struct {
		status int
		body   string
		kind   string
		msg    string
		limit  string
	}{
		{422, `{"error":{"kind":"limit_exceeded","message":"fuel","limit":"timeout"}}`, "limit_exceeded", "fuel", "timeout"},
		{404, `{"error":{"kind":"not_found","message":"no such job"},"job":"j"}`, "not_found", "no such job", ""},
		{502, ``, "unavailable", "", ""},
		{413, `<html>too big</html>`, "too_large", "<html>too big</html>", ""},
		{500, `{"error":{}}`, "internal", `{"error":{}}`, ""},
	}
	for _, c := range cases {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer tok" {
				t.Errorf("authorization header %q", r.Header.Get("Authorization"))
			}
			w.WriteHeader(c.status)
			w.Write([]byte(c.body))
		}))
		cl, err := New(srv.URL, "tok")
		if err != nil {
			t.Fatal(err)
		}
		_, status, err := cl.Do(context.Background(), "GET", "/v1/status", nil)
		srv.Close()
		var ae *Error
		if !errors.As(err, &ae) {
			t.Fatalf("%d %q: error %v is not an *Error", c.status, c.body, err)
		}
		if status != c.status || ae.Status != c.status || string(ae.Kind) != c.kind || ae.Message != c.msg || ae.Limit != c.limit {
			t.Errorf("%d %q: got status %d, %+v", c.status, c.body, status, ae)
		}
	}
}
