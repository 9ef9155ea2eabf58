package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/testpeer"
	"github.com/remediator/remediator/internal/testtls"
)

// TestServeAuthenticatesClientCertificates serves HTTPS requiring client certificates
// signed by a CA the test mints: a client with one is accepted without any token, a
// client without one cannot even finish the handshake.
func TestServeAuthenticatesClientCertificates(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA := testtls.NewCA(t), testtls.NewCA(t)
	server := serverCA.Leaf(t, testtls.LeafOptions{DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	client := clientCA.Leaf(t, testtls.LeafOptions{CommonName: "alertmanager"})
	writeFile(t, filepath.Join(dir, "server.crt"), server.PEM())
	writeFile(t, filepath.Join(dir, "server.key"), server.KeyPEM())
	writeFile(t, filepath.Join(dir, "clients.crt"), string(clientCA.PEM()))
	cfg := filepath.Join(dir, "remediator.yml")
	writeFile(t, cfg, "tls:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: clients.crt\n")

	addr := "127.0.0.1:" + strconv.Itoa(testpeer.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	logs := &syncBuffer{}
	go func() {
		done <- run(ctx, []string{"serve", "--config.file=" + cfg, "--web.listen-address=" + addr,
			"--storage.path=" + filepath.Join(dir, "data")}, logs, logs)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	withCert := httpsClient(serverCA, client.TLSCertificate)
	body, err := os.ReadFile("../../testdata/notifications/alertmanager-0.35-firing.json")
	if err != nil {
		t.Fatal(err)
	}
	var code int
	testpeer.WaitFor(t, 15*time.Second, func() bool {
		resp, err := withCert.Post("https://"+addr+"/webhook", "application/json", bytes.NewReader(body))
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		code = resp.StatusCode
		return true
	}, "serve to answer over TLS")
	if code != http.StatusOK {
		t.Fatalf("a client with a verified certificate got %d, want 200", code)
	}

	without := httpsClient(serverCA, nil)
	resp, err := without.Post("https://"+addr+"/webhook", "application/json", bytes.NewReader(body))
	if err == nil {
		_ = resp.Body.Close()
		t.Fatalf("a client without a certificate got %d, want a failed handshake", resp.StatusCode)
	}
}

func httpsClient(ca *testtls.CA, cert func() tls.Certificate) *http.Client {
	tc := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		c := cert()
		tc.Certificates = []tls.Certificate{c}
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
}
