package raftstore

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

// testCA makes a CA and returns a function issuing node certificates for 127.0.0.1 that it signs.
func testCA(t *testing.T) (*x509.CertPool, func(cn string) tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	serial := int64(2)
	return pool, func(cn string) tls.Certificate {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		serial++
		ct := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
		d, err := x509.CreateCertificate(rand.Reader, ct, ca, &k.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{d}, PrivateKey: k}
	}
}

func mtls(pool *x509.CertPool, cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, RootCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}
}

// Nodes whose certificates the cluster's CA signed replicate over mutual TLS; a node with a
// certificate from another CA cannot take part: it never receives the log.
func TestNode_MutualTLS(t *testing.T) {
	pool, issue := testCA(t)
	_, foreign := testCA(t)
	s := newNodeSet(t)
	s.start("n1", true, func(c *NodeConfig) { c.TLS = mtls(pool, issue("n1")) })
	n2 := s.start("n2", false, func(c *NodeConfig) { c.TLS = mtls(pool, issue("n2")) })
	ctx := context.Background()
	if err := s.leader(5*time.Second).AddVoter(ctx, "n2", n2.Address()); err != nil {
		t.Fatal(err)
	}
	if err := s.leader(5*time.Second).Apply(ctx, set("over-tls", "1")); err != nil {
		t.Fatal(err)
	}
	if _, k := s.converge(); k != 1 {
		t.Fatalf("%d keys replicated over TLS, want 1", k)
	}

	// An intruder with a certificate the CA did not sign is added to the configuration (as a
	// misconfigured join would) but receives nothing.
	bad := s.start("n3", false, func(c *NodeConfig) { c.TLS = mtls(pool, foreign("n3")) })
	if err := s.leader(5*time.Second).AddNonvoter(ctx, "n3", bad.Address()); err != nil {
		t.Fatal(err)
	}
	if err := s.leader(5*time.Second).Apply(ctx, set("after", "2")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if bad.KV().Applied() != 0 {
		t.Fatalf("a node with a foreign certificate applied up to %d", bad.KV().Applied())
	}
	s.stop("n3")
}
