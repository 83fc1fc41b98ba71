package boardtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"testing"
	"time"

	"pilebridge/simulator"
)

// standIn is the platform stand-in over TLS, with a certificate for the
// address the board reaches it at, issued by a CA made for this test: the
// board trusts that CA as it trusts the real platform's, through its
// ca-certificates; verification stays on.
type standIn struct {
	*simulator.Platform
	addr  string
	caPEM []byte
}

func newStandIn(t *testing.T, appID, secret string) *standIn {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pilebridge board-test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	must(t, err)
	ca, err := x509.ParseCertificate(caDER)
	must(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: guestPlatform},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP(guestPlatform), net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	must(t, err)

	plat, err := simulator.NewPlatform(appID, secret, "")
	must(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &http.Server{Handler: plat, ReadHeaderTimeout: 10 * time.Second}
	tl := tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: key}}})
	go func() { _ = srv.Serve(tl) }()
	t.Cleanup(func() { srv.Close() })
	return &standIn{Platform: plat, addr: ln.Addr().String(),
		caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})}
}

// record is what the test reads of a replenish record.
type record struct {
	Order    string `json:"order"`
	State    int    `json:"state"`
	Quantity int64  `json:"quantity"`
}

// finals are the final bills received, in order of first arrival, with
// every quantity each order was posted with (a re-post after a power cut
// must say the same).
func (s *standIn) finals(t *testing.T) (orders []string, quantities map[string][]int64) {
	quantities = map[string][]int64{}
	for _, r := range s.Received(simulator.PathReplenish) {
		var rec record
		must(t, json.Unmarshal(r.Body, &rec))
		if rec.State == 2 { // progress
			continue
		}
		if _, seen := quantities[rec.Order]; !seen {
			orders = append(orders, rec.Order)
		}
		quantities[rec.Order] = append(quantities[rec.Order], rec.Quantity)
	}
	return orders, quantities
}
