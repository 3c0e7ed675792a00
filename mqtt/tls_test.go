package mqtt

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/internal/testmqtt"
)

// TestTLSClientCertificate: the link to an ssl:// broker that requires a
// client certificate (mosquitto's require_certificate) works with
// --mqtt-ca, --mqtt-cert and --mqtt-key.
func TestTLSClientCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := writeCert(t, dir, "ca", nil, nil, true)
	writeCert(t, dir, "server", ca, caKey, false)
	writeCert(t, dir, "client", ca, caKey, false)
	f := func(name string) string { return filepath.Join(dir, name) }
	m := testmqtt.StartWith(t, testmqtt.Options{TLS: &testmqtt.TLSFiles{
		CAFile: f("ca.pem"), CertFile: f("server.pem"), KeyFile: f("server-key.pem")}})
	var calls atomic.Int64
	bindings := map[string][]api.MQTTBinding{"f": {{Filter: "tls/+", QoS: 1}}}
	s := startService(t, Config{Broker: fmt.Sprintf("ssl://127.0.0.1:%d", m.Port), Bindings: bindings,
		CAFile: f("ca.pem"), CertFile: f("client.pem"), KeyFile: f("client-key.pem"),
		Invoke: func(context.Context, Delivery) Outcome { calls.Add(1); return Outcome{OK: true} }})
	waitSubscribed(t, s)
	// The sensor publishes through the agent's own TLS link: a reply of
	// another binding would need a second TLS client here.
	if err := s.link.publish(t.Context(), "tls/x", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the message over TLS", func() bool { return calls.Load() == 1 })

}

// writeCert writes NAME.pem and NAME-key.pem: a CA (ca true) or a
// certificate for 127.0.0.1 signed by parent.
func writeCert(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, ca bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		KeyUsage:    x509.KeyUsageDigitalSignature,
	}
	if ca {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for file, block := range map[string]*pem.Block{
		name + ".pem":     {Type: "CERTIFICATE", Bytes: der},
		name + "-key.pem": {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, file), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// TestUsernamePassword: the link logs in to a broker that admits only
// known users.
func TestUsernamePassword(t *testing.T) {
	m := testmqtt.StartWith(t, testmqtt.Options{Users: map[string]string{"gateway": "s3cret"}})
	var calls atomic.Int64
	s := startService(t, Config{Broker: m.URL(), Username: "gateway", Password: "s3cret",
		Bindings: map[string][]api.MQTTBinding{"f": {{Filter: "auth/+", QoS: 1}}},
		Invoke:   func(context.Context, Delivery) Outcome { calls.Add(1); return Outcome{OK: true} }})
	waitSubscribed(t, s)
	if err := s.link.publish(t.Context(), "auth/x", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the message", func() bool { return calls.Load() == 1 })
}
