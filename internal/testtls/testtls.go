// Package testtls mints certificates and runs TLS servers on loopback ports for tests:
// implicit TLS, SMTP and IMAP with STARTTLS, and a silent server that never answers.
// It is test support only. It owns no production behaviour and must not be imported
// outside _test.go files.
package testtls

import (
	"bufio"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// CA is a certificate authority that signs certificates for tests.
type CA struct {
	// Cert is the CA's own certificate.
	Cert *x509.Certificate
	key  crypto.Signer
	// chain is Cert followed by the certificates above it, ending with the root.
	chain []*x509.Certificate
}

// LeafOptions choose what a minted certificate says. The zero value is a certificate
// for no names, valid from an hour ago for 90 days, with a random serial.
type LeafOptions struct {
	// CommonName is the subject's common name; the first DNS name when empty.
	CommonName string
	// DNSNames are the DNS subject alternative names.
	DNSNames []string
	// IPs are the IP address subject alternative names.
	IPs []net.IP
	// NotBefore defaults to an hour ago, or to 90 days before NotAfter when NotAfter
	// is earlier than that.
	NotBefore time.Time
	// NotAfter defaults to 90 days from now.
	NotAfter time.Time
	// Serial defaults to a random 128-bit number.
	Serial *big.Int
}

// Cert is a minted certificate with its key and the chain that issued it.
type Cert struct {
	// Leaf is the certificate, parsed back from its DER encoding.
	Leaf *x509.Certificate
	// Chain holds the issuing certificates from the leaf's issuer up to the root; it is
	// empty for a self-signed certificate. Servers send it after the leaf.
	Chain []*x509.Certificate
	// Key is the leaf's private key.
	Key    crypto.Signer
	keyDER []byte
}

const defaultValidity = 90 * 24 * time.Hour

// NewCA returns a new self-signed root CA, valid from a year ago for ten years.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := caTemplate(t, "testtls root CA")
	cert := sign(t, tmpl, tmpl, key.Public(), key)

	return &CA{Cert: cert, key: key, chain: []*x509.Certificate{cert}}
}

// Intermediate returns a new CA signed by ca. Leaves it signs carry it and the
// certificates above it as their chain.
func (ca *CA) Intermediate(t testing.TB) *CA {
	t.Helper()
	key := newKey(t)
	cert := sign(t, caTemplate(t, "testtls intermediate CA"), ca.Cert, key.Public(), ca.key)
	chain := append([]*x509.Certificate{cert}, ca.chain...)

	return &CA{Cert: cert, key: key, chain: chain}
}

// Leaf returns a certificate for a TLS server, signed by ca as opts describe.
func (ca *CA) Leaf(t testing.TB, opts LeafOptions) *Cert {
	t.Helper()
	key := newKey(t)
	leaf := sign(t, leafTemplate(t, opts), ca.Cert, key.Public(), ca.key)

	return newCert(t, leaf, append([]*x509.Certificate(nil), ca.chain...), key)
}

// SelfSigned returns a certificate for a TLS server signed by its own key.
func SelfSigned(t testing.TB, opts LeafOptions) *Cert {
	t.Helper()
	key := newKey(t)
	tmpl := leafTemplate(t, opts)
	leaf := sign(t, tmpl, tmpl, key.Public(), key)

	return newCert(t, leaf, nil, key)
}

// Root returns the root certificate ca chains to: ca's own certificate for a root CA.
func (ca *CA) Root() *x509.Certificate { return ca.chain[len(ca.chain)-1] }

// Pool returns a pool holding the root certificate ca chains to.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Root())
	return pool
}

// PEM returns the root certificate ca chains to, PEM-encoded.
func (ca *CA) PEM() []byte { return encodeCerts(ca.Root()) }

// PEMFile writes the root certificate ca chains to into a file in t's temporary
// directory and returns the file's path.
func (ca *CA) PEMFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, ca.PEM(), 0o600); err != nil {
		t.Fatalf("writing CA file: %v", err)
	}
	return path
}

// PEM returns the leaf followed by its chain, PEM-encoded, as a server would store them.
func (c *Cert) PEM() string {
	return string(encodeCerts(append([]*x509.Certificate{c.Leaf}, c.Chain...)...))
}

// ChainPEM returns the chain alone, PEM-encoded; empty for a self-signed certificate.
func (c *Cert) ChainPEM() string { return string(encodeCerts(c.Chain...)) }

// KeyPEM returns the private key as a PKCS #8 PEM block.
func (c *Cert) KeyPEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: c.keyDER}))
}

// TLSCertificate returns the certificate, its chain and its key as crypto/tls serves them.
func (c *Cert) TLSCertificate() tls.Certificate {
	der := [][]byte{c.Leaf.Raw}
	for _, cert := range c.Chain {
		der = append(der, cert.Raw)
	}
	return tls.Certificate{Certificate: der, PrivateKey: c.Key, Leaf: c.Leaf}
}

func newCert(t testing.TB, leaf *x509.Certificate, chain []*x509.Certificate,
	key *ecdsa.PrivateKey,
) *Cert {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("marshalling key: %v", err)
	}
	return &Cert{Leaf: leaf, Chain: chain, Key: key, keyDER: der}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generating key: %v", err)
	}
	return key
}

func randomSerial(t testing.TB) *big.Int {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		t.Fatalf("generating serial: %v", err)
	}
	return serial
}

func caTemplate(t testing.TB, name string) *x509.Certificate {
	t.Helper()
	now := time.Now()
	return &x509.Certificate{
		SerialNumber:          randomSerial(t),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"testtls"}},
		NotBefore:             now.Add(-365 * 24 * time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign |
			x509.KeyUsageDigitalSignature,
	}
}

func leafTemplate(t testing.TB, opts LeafOptions) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          opts.Serial,
		Subject:               pkix.Name{CommonName: opts.CommonName},
		DNSNames:              opts.DNSNames,
		IPAddresses:           opts.IPs,
		NotBefore:             opts.NotBefore,
		NotAfter:              opts.NotAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = randomSerial(t)
	}
	if tmpl.Subject.CommonName == "" && len(opts.DNSNames) > 0 {
		tmpl.Subject.CommonName = opts.DNSNames[0]
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(defaultValidity)
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = earliest(time.Now().Add(-time.Hour), tmpl.NotAfter.Add(-defaultValidity))
	}
	return tmpl
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// sign creates tmpl signed by parent's key and parses it back, so that the returned
// certificate carries Raw and the truncated times exactly as a peer would see them.
func sign(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey,
	key crypto.Signer,
) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatalf("creating certificate %q: %v", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parsing certificate %q: %v", tmpl.Subject.CommonName, err)
	}
	return cert
}

func encodeCerts(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// Mode is what a Server speaks on each connection.
type Mode int

// The modes a Server runs in.
const (
	// ImplicitTLS starts the TLS handshake as soon as a connection opens.
	ImplicitTLS Mode = iota
	// SMTPStartTLS greets as an ESMTP server, offers STARTTLS in its EHLO reply and
	// upgrades the connection when asked.
	SMTPStartTLS
	// IMAPStartTLS greets as an IMAP server, advertises STARTTLS in its capabilities and
	// upgrades the connection when asked.
	IMAPStartTLS
	// SMTPWithoutStartTLS is SMTPStartTLS without the STARTTLS extension.
	SMTPWithoutStartTLS
	// IMAPWithoutStartTLS is IMAPStartTLS without the STARTTLS capability.
	IMAPWithoutStartTLS
	// Silent accepts connections and never writes anything.
	Silent
)

var modeNames = map[Mode]string{
	ImplicitTLS: "implicit TLS", SMTPStartTLS: "SMTP STARTTLS", IMAPStartTLS: "IMAP STARTTLS",
	SMTPWithoutStartTLS: "SMTP without STARTTLS", IMAPWithoutStartTLS: "IMAP without STARTTLS",
	Silent: "silent",
}

// String names the mode as test output does.
func (m Mode) String() string {
	if name, ok := modeNames[m]; ok {
		return name
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// connTimeout bounds every connection a Server handles, so that a client that hangs
// cannot keep a test alive even before cleanup closes the connection.
const connTimeout = 30 * time.Second

// Server is a TLS server on a random 127.0.0.1 port. Each connection is handled in its
// own goroutine; Close, which t.Cleanup calls, stops them all and waits for them.
type Server struct {
	mode Mode
	ln   net.Listener
	cert atomic.Pointer[tls.Certificate]
	wg   sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// Serve starts a server speaking mode with cert on a random 127.0.0.1 port and closes
// it when the test ends. cert may be nil for Silent.
func Serve(t testing.TB, mode Mode, cert *Cert) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	s := &Server{mode: mode, ln: ln, conns: map[net.Conn]struct{}{}}
	if cert != nil {
		s.SetCertificate(cert)
	}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.Close)

	return s
}

// Addr returns the address the server listens on, "127.0.0.1:port".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Port returns the port the server listens on.
func (s *Server) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// SetCertificate makes every handshake from now on present cert. It is safe to call
// while connections are being served.
func (s *Server) SetCertificate(cert *Cert) {
	tc := cert.TLSCertificate()
	s.cert.Store(&tc)
}

// Close stops accepting, closes every open connection and waits for their goroutines.
// Calling it again does nothing.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()

	_ = s.ln.Close()
	s.wg.Wait()
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return // the listener was closed
		}
		if !s.track(conn) {
			_ = conn.Close()
			return
		}
		s.wg.Add(1)
		go s.handle(conn)
	}
}

func (s *Server) track(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[conn] = struct{}{}
	return true
}

func (s *Server) untrack(conn net.Conn) {
	s.mu.Lock()
	delete(s.conns, conn)
	s.mu.Unlock()
	_ = conn.Close()
}

func (s *Server) handle(conn net.Conn) {
	defer s.wg.Done()
	defer s.untrack(conn)
	_ = conn.SetDeadline(time.Now().Add(connTimeout))

	switch s.mode {
	case ImplicitTLS:
		s.serveTLS(conn)
	case SMTPStartTLS, SMTPWithoutStartTLS:
		s.serveSMTP(conn, s.mode == SMTPStartTLS)
	case IMAPStartTLS, IMAPWithoutStartTLS:
		s.serveIMAP(conn, s.mode == IMAPStartTLS)
	default:
		_, _ = io.Copy(io.Discard, conn) // silent: read until the client gives up
	}
}

func (s *Server) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c := s.cert.Load(); c != nil {
				return c, nil
			}
			return nil, errors.New("testtls: no certificate set")
		},
	}
}

// upgrade runs the server side of a TLS handshake on conn.
func (s *Server) upgrade(conn net.Conn) (*tls.Conn, error) {
	tc := tls.Server(conn, s.tlsConfig())
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	return tc, nil
}

func (s *Server) serveTLS(conn net.Conn) {
	tc, err := s.upgrade(conn)
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, tc)
}

const hostname = "testtls.invalid"

func (s *Server) serveSMTP(conn net.Conn, offer bool) {
	lc := newLineConn(conn)
	lc.write("220 " + hostname + " ESMTP ready")
	for lc.scan() {
		verb, _, _ := strings.Cut(lc.line(), " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			lc.write(ehloReply(offer && !lc.secure)...)
		case "HELO":
			lc.write("250 " + hostname)
		case "STARTTLS":
			if !offer || lc.secure {
				lc.write("454 4.7.0 TLS not available")
				continue
			}
			lc.write("220 ready to start TLS")
			if !lc.upgrade(s) {
				return
			}
		case "NOOP", "RSET":
			lc.write("250 2.0.0 ok")
		case "QUIT":
			lc.write("221 2.0.0 bye")
			return
		default:
			lc.write("502 5.5.2 command not recognized")
		}
	}
}

func ehloReply(offer bool) []string {
	ext := []string{hostname + " greets you", "PIPELINING", "SIZE 10485760"}
	if offer {
		ext = append(ext, "STARTTLS")
	}
	ext = append(ext, "8BITMIME")
	lines := make([]string, len(ext))
	for i, e := range ext {
		sep := "-"
		if i == len(ext)-1 {
			sep = " "
		}
		lines[i] = "250" + sep + e
	}
	return lines
}

func (s *Server) serveIMAP(conn net.Conn, offer bool) {
	lc := newLineConn(conn)
	lc.write("* OK [CAPABILITY " + imapCapabilities(offer) + "] ready")
	for lc.scan() {
		tag, rest, _ := strings.Cut(lc.line(), " ")
		cmd, _, _ := strings.Cut(rest, " ")
		switch strings.ToUpper(cmd) {
		case "CAPABILITY":
			caps := imapCapabilities(offer && !lc.secure)
			lc.write("* CAPABILITY "+caps, tag+" OK CAPABILITY completed")
		case "STARTTLS":
			if !offer || lc.secure {
				lc.write(tag + " NO STARTTLS not available")
				continue
			}
			lc.write(tag + " OK Begin TLS negotiation now")
			if !lc.upgrade(s) {
				return
			}
		case "NOOP":
			lc.write(tag + " OK NOOP completed")
		case "LOGOUT":
			lc.write("* BYE logging out", tag+" OK LOGOUT completed")
			return
		default:
			lc.write(tag + " BAD unknown command")
		}
	}
}

func imapCapabilities(offer bool) string {
	if offer {
		return "IMAP4rev1 STARTTLS"
	}
	return "IMAP4rev1"
}

// lineConn is the server side of a line-based protocol that may switch to TLS.
type lineConn struct {
	conn   net.Conn
	sc     *bufio.Scanner
	secure bool
}

func newLineConn(conn net.Conn) *lineConn {
	return &lineConn{conn: conn, sc: bufio.NewScanner(conn)}
}

func (lc *lineConn) scan() bool { return lc.sc.Scan() }

func (lc *lineConn) line() string { return strings.TrimRight(lc.sc.Text(), "\r") }

// write sends lines, each ending with CRLF; a failed write ends the next scan.
func (lc *lineConn) write(lines ...string) {
	_, _ = io.WriteString(lc.conn, strings.Join(lines, "\r\n")+"\r\n")
}

// upgrade switches to TLS. Whatever the client sent before the handshake is dropped,
// as a careful server does.
func (lc *lineConn) upgrade(s *Server) bool {
	tc, err := s.upgrade(lc.conn)
	if err != nil {
		return false
	}
	*lc = lineConn{conn: tc, sc: bufio.NewScanner(tc), secure: true}
	return true
}
