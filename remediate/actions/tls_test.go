package actions

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/remediator/remediator/internal/testtls"
)

const tlsTestHost = "mail.example.test"

// runTLSProbe runs tls.probe with p and fails the test if it takes longer than limit.
func runTLSProbe(t *testing.T, p Params, limit time.Duration) (Facts, error) {
	t.Helper()
	start := time.Now()
	facts, err := NewTLSProbe().Run(context.Background(), p, Env{Logger: zap.NewNop()})
	if took := time.Since(start); took > limit {
		t.Errorf("probe took %s, want under %s", took, limit)
	}
	return facts, err
}

// wantCertificateFacts checks the facts that describe cert exactly.
func wantCertificateFacts(t *testing.T, facts Facts, cert *testtls.Cert) {
	t.Helper()
	leaf := cert.Leaf
	sum := sha256.Sum256(leaf.Raw)
	want := map[string]any{
		"not_after":  leaf.NotAfter,
		"not_before": leaf.NotBefore,
		"serial":     leaf.SerialNumber.Text(16),
		"sha256":     hex.EncodeToString(sum[:]),
		"subject":    certName(leaf.Subject),
		"issuer":     certName(leaf.Issuer),
	}
	for name, w := range want {
		if got := facts[name]; !reflect.DeepEqual(got, w) {
			t.Errorf("fact %s = %v, want %v", name, got, w)
		}
	}
	if got, _ := facts["dns_names"].([]string); !slices.Equal(got, leaf.DNSNames) {
		t.Errorf("fact dns_names = %q, want %q", got, leaf.DNSNames)
	}
}

// wantDeclaredFacts checks that facts holds every declared fact, with its declared type,
// and nothing else.
func wantDeclaredFacts(t *testing.T, facts Facts) {
	t.Helper()
	spec := NewTLSProbe().Spec()
	goTypes := map[Type]reflect.Type{
		String: reflect.TypeFor[string](), Int: reflect.TypeFor[int64](),
		Bool: reflect.TypeFor[bool](), Time: reflect.TypeFor[time.Time](),
		StringList: reflect.TypeFor[[]string](),
	}
	for _, f := range spec.Facts {
		if got := reflect.TypeOf(facts[f.Name]); got != goTypes[f.Type] {
			t.Errorf("fact %s has Go type %v, want %v for %s", f.Name, got, goTypes[f.Type], f.Type)
		}
	}
	if len(facts) != len(spec.Facts) {
		t.Errorf("got %d facts, want the %d declared", len(facts), len(spec.Facts))
	}
}

func TestTLSProbeReportsCertificate(t *testing.T) {
	ca := testtls.NewCA(t)
	caFile := ca.PEMFile(t)
	now := time.Now()
	valid := testtls.LeafOptions{
		DNSNames: []string{tlsTestHost, "imap.example.test"},
		NotAfter: now.Add(30*24*time.Hour + time.Hour),
		Serial:   big.NewInt(0x1234abcd),
	}
	tests := []struct {
		name       string
		mode       testtls.Mode
		cert       func(t *testing.T) *testtls.Cert
		params     Params // address and ca_file are added
		protocol   string
		daysLeft   int64
		verifyErr  string // a part of verify_error; empty when the chain must verify
		wantSerial string
	}{
		{
			name:       "reports a valid certificate served over implicit TLS",
			mode:       testtls.ImplicitTLS,
			cert:       func(t *testing.T) *testtls.Cert { return ca.Leaf(t, valid) },
			params:     Params{"server_name": tlsTestHost},
			protocol:   "tls",
			daysLeft:   30,
			wantSerial: "1234abcd",
		},
		{
			name:     "upgrades an SMTP session with STARTTLS when asked to",
			mode:     testtls.SMTPStartTLS,
			cert:     func(t *testing.T) *testtls.Cert { return ca.Leaf(t, valid) },
			params:   Params{"server_name": tlsTestHost, "starttls": "smtp"},
			protocol: "smtp",
			daysLeft: 30,
		},
		{
			name:     "upgrades an IMAP session with STARTTLS when asked to",
			mode:     testtls.IMAPStartTLS,
			cert:     func(t *testing.T) *testtls.Cert { return ca.Leaf(t, valid) },
			params:   Params{"server_name": "imap.example.test", "starttls": "imap"},
			protocol: "imap",
			daysLeft: 30,
		},
		{
			name: "verifies a chain through the intermediate the server sends",
			mode: testtls.ImplicitTLS,
			cert: func(t *testing.T) *testtls.Cert {
				return ca.Intermediate(t).Leaf(t, valid)
			},
			params:   Params{"server_name": tlsTestHost},
			protocol: "tls",
			daysLeft: 30,
		},
		{
			name: "checks the certificate for the IP address when no server name is given",
			mode: testtls.ImplicitTLS,
			cert: func(t *testing.T) *testtls.Cert {
				return ca.Leaf(t, testtls.LeafOptions{IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
					NotAfter: now.Add(10*24*time.Hour + time.Hour)})
			},
			params:   Params{},
			protocol: "tls",
			daysLeft: 10,
		},
		{
			name: "reports an expired certificate as unverified with negative days left",
			mode: testtls.ImplicitTLS,
			cert: func(t *testing.T) *testtls.Cert {
				return ca.Leaf(t, testtls.LeafOptions{DNSNames: []string{tlsTestHost},
					NotAfter: now.Add(-47 * time.Hour)})
			},
			params:    Params{"server_name": tlsTestHost},
			protocol:  "tls",
			daysLeft:  -2,
			verifyErr: "expired",
		},
		{
			name: "reports a self-signed certificate as unverified",
			mode: testtls.ImplicitTLS,
			cert: func(t *testing.T) *testtls.Cert {
				return testtls.SelfSigned(t, testtls.LeafOptions{DNSNames: []string{tlsTestHost},
					NotAfter: now.Add(5*24*time.Hour + time.Hour)})
			},
			params:    Params{"server_name": tlsTestHost},
			protocol:  "tls",
			daysLeft:  5,
			verifyErr: "unknown authority",
		},
		{
			name:      "reports a certificate for another name as unverified",
			mode:      testtls.ImplicitTLS,
			cert:      func(t *testing.T) *testtls.Cert { return ca.Leaf(t, valid) },
			params:    Params{"server_name": "www.example.test"},
			protocol:  "tls",
			daysLeft:  30,
			verifyErr: "www.example.test",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert := tt.cert(t)
			srv := testtls.Serve(t, tt.mode, cert)
			p := Params{"address": srv.Addr(), "ca_file": caFile, "timeout": 5 * time.Second}
			for k, v := range tt.params {
				p[k] = v
			}

			facts, err := runTLSProbe(t, p, 10*time.Second)
			if err != nil {
				t.Fatalf("probe failed: %v", err)
			}

			wantDeclaredFacts(t, facts)
			wantCertificateFacts(t, facts, cert)
			if tt.wantSerial != "" && facts["serial"] != tt.wantSerial {
				t.Errorf("serial = %v, want %s", facts["serial"], tt.wantSerial)
			}
			if facts["protocol"] != tt.protocol {
				t.Errorf("protocol = %v, want %s", facts["protocol"], tt.protocol)
			}
			if facts["days_left"] != tt.daysLeft {
				t.Errorf("days_left = %v, want %d", facts["days_left"], tt.daysLeft)
			}
			verified, verifyErr := facts["verified"].(bool), facts["verify_error"].(string)
			switch {
			case tt.verifyErr == "" && (!verified || verifyErr != ""):
				t.Errorf("verified = %v with %q, want verified", verified, verifyErr)
			case tt.verifyErr != "" && (verified || !strings.Contains(verifyErr, tt.verifyErr)):
				t.Errorf("verified = %v with %q, want unverified mentioning %q",
					verified, verifyErr, tt.verifyErr)
			}
		})
	}
}

func TestTLSProbeSeesRenewedCertificate(t *testing.T) {
	ca := testtls.NewCA(t)
	old := ca.Leaf(t, testtls.LeafOptions{DNSNames: []string{tlsTestHost}})
	renewed := ca.Leaf(t, testtls.LeafOptions{DNSNames: []string{tlsTestHost}})
	srv := testtls.Serve(t, testtls.SMTPStartTLS, old)
	p := Params{"address": srv.Addr(), "starttls": "smtp", "ca_file": ca.PEMFile(t)}

	for _, want := range []*testtls.Cert{old, renewed} {
		srv.SetCertificate(want)
		facts, err := runTLSProbe(t, p, 10*time.Second)
		if err != nil {
			t.Fatalf("probe failed: %v", err)
		}
		if got := facts["serial"]; got != want.Leaf.SerialNumber.Text(16) {
			t.Errorf("serial = %v, want %s", got, want.Leaf.SerialNumber.Text(16))
		}
	}
}

// refusedAddress returns a loopback address nothing listens on.
func refusedAddress(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestTLSProbeFails(t *testing.T) {
	ca := testtls.NewCA(t)
	cert := ca.Leaf(t, testtls.LeafOptions{DNSNames: []string{tlsTestHost}})
	serve := func(mode testtls.Mode) func(t *testing.T) string {
		return func(t *testing.T) string { return testtls.Serve(t, mode, cert).Addr() }
	}
	fixed := func(addr string) func(t *testing.T) string {
		return func(*testing.T) string { return addr }
	}
	emptyCAFile := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(emptyCAFile, []byte("no certificates here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		address func(t *testing.T) string
		params  Params
		reason  string
		msg     string // a part of the error message
	}{
		{"times out on a server that never sends its SMTP greeting", serve(testtls.Silent),
			Params{"starttls": "smtp"}, ReasonTimeout, "reading greeting"},
		{"times out on a server that never answers the TLS handshake", serve(testtls.Silent),
			Params{}, ReasonTimeout, "handshaking"},
		{"reports a refused connection as unavailable", refusedAddress,
			Params{}, ReasonUnavailable, "dialing"},
		{"reports an SMTP server without STARTTLS as unavailable",
			serve(testtls.SMTPWithoutStartTLS),
			Params{"starttls": "smtp"}, ReasonUnavailable, "does not offer STARTTLS"},
		{"reports an IMAP server without STARTTLS as unavailable",
			serve(testtls.IMAPWithoutStartTLS),
			Params{"starttls": "imap"}, ReasonUnavailable, "does not offer STARTTLS"},
		{"fails the handshake when a plaintext IMAP server is probed for implicit TLS",
			serve(testtls.IMAPStartTLS), Params{"starttls": "none"}, ReasonUnavailable,
			"handshaking"},
		{"rejects an address without a port as invalid", fixed("127.0.0.1"),
			Params{}, ReasonInvalid, "missing port"},
		{"rejects an unknown STARTTLS mode as invalid", fixed("127.0.0.1:25"),
			Params{"starttls": "pop3"}, ReasonInvalid, "starttls"},
		{"rejects a CA file without certificates as invalid", serve(testtls.ImplicitTLS),
			Params{"ca_file": emptyCAFile}, ReasonInvalid, "no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := tt.address(t)
			p := Params{"address": addr, "timeout": 300 * time.Millisecond}
			for k, v := range tt.params {
				p[k] = v
			}

			_, err := runTLSProbe(t, p, 5*time.Second)

			var se *StepError
			if !errors.As(err, &se) {
				t.Fatalf("got error %v, want a *StepError", err)
			}
			if se.Reason != tt.reason {
				t.Errorf("reason = %s, want %s (%v)", se.Reason, tt.reason, err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not mention %q", err, tt.msg)
			}
			if tt.reason != ReasonInvalid && !strings.HasPrefix(err.Error(), "probing "+addr+": ") {
				t.Errorf("error %q does not start with the address probed", err)
			}
		})
	}
}

func TestTLSProbeStopsWhenCancelled(t *testing.T) {
	srv := testtls.Serve(t, testtls.Silent, nil)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)

	_, err := NewTLSProbe().Run(ctx, Params{"address": srv.Addr(), "starttls": "imap"}, Env{})

	var se *StepError
	if !errors.As(err, &se) || se.Reason != ReasonFailed || !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want a failed StepError wrapping context.Canceled", err)
	}
}

func TestTLSProbeRequest(t *testing.T) {
	tests := []struct {
		name   string
		params Params
		want   map[string]any
		errMsg string
	}{
		{
			name:   "defaults the server name to the host and picks implicit TLS for 993",
			params: Params{"address": "imap.example.test:993"},
			want: map[string]any{"address": "imap.example.test:993",
				"server_name": "imap.example.test", "starttls": "none", "timeout": "10s"},
		},
		{
			name:   "sends no server name for an IPv6 address",
			params: Params{"address": "[2001:db8::1]:993", "timeout": 3 * time.Second},
			want: map[string]any{"address": "[2001:db8::1]:993", "server_name": "",
				"starttls": "none", "timeout": "3s"},
		},
		{
			name:   "resolves auto to smtp on the submission port",
			params: Params{"address": "mail.example.test:587", "starttls": "auto"},
			want: map[string]any{"address": "mail.example.test:587",
				"server_name": "mail.example.test", "starttls": "smtp", "timeout": "10s"},
		},
		{
			name: "keeps an explicit server name, mode and CA file",
			params: Params{"address": "192.0.2.7:2525", "server_name": tlsTestHost,
				"starttls": "smtp", "ca_file": "/etc/ca.pem"},
			want: map[string]any{"address": "192.0.2.7:2525", "server_name": tlsTestHost,
				"starttls": "smtp", "timeout": "10s", "ca_file": "/etc/ca.pem"},
		},
		{name: "rejects an empty address", params: Params{}, errMsg: "address: required"},
		{name: "rejects an address without a port", params: Params{"address": "[2001:db8::1]"},
			errMsg: "missing port"},
		{name: "rejects a port out of range", params: Params{"address": "a.test:70000"},
			errMsg: "port must be a number"},
		{name: "rejects a named port", params: Params{"address": "a.test:smtp"},
			errMsg: "port must be a number"},
		{name: "rejects a negative timeout",
			params: Params{"address": "a.test:443", "timeout": -time.Second},
			errMsg: "must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := NewTLSProbe().Request(tt.params, Env{})
			if tt.errMsg != "" {
				var se *StepError
				if !errors.As(err, &se) || se.Reason != ReasonInvalid ||
					!strings.Contains(err.Error(), tt.errMsg) {
					t.Fatalf("got %v, want an invalid StepError mentioning %q", err, tt.errMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := Request{Service: "tls", Operation: "Probe", Input: tt.want}
			if !reflect.DeepEqual(req, want) {
				t.Errorf("got %+v, want %+v", req, want)
			}
		})
	}
}

func TestAutoSTARTTLS(t *testing.T) {
	want := map[int]string{
		25: "smtp", 587: "smtp", 143: "imap",
		993: "none", 465: "none", 443: "none", 8443: "none",
	}
	for port, mode := range want {
		if got := autoSTARTTLS(port); got != mode {
			t.Errorf("autoSTARTTLS(%d) = %s, want %s", port, got, mode)
		}
	}
}

func TestTLSProbeSpec(t *testing.T) {
	spec := NewTLSProbe().Spec()
	if spec.Name != "tls.probe" || spec.Mutates || spec.IAM != nil || spec.Doc == "" {
		t.Errorf("spec header %q mutates=%v iam=%v is not a documented read-only tls.probe",
			spec.Name, spec.Mutates, spec.IAM)
	}
	for _, p := range spec.Params {
		if p.Doc == "" {
			t.Errorf("param %s has no doc", p.Name)
		}
	}
	for _, f := range spec.Facts {
		if f.Doc == "" {
			t.Errorf("fact %s has no doc", f.Name)
		}
	}
}

// negotiateWithServer runs the client side of a STARTTLS exchange against a server that
// sends script over a pipe, whatever the client says, and then hangs up. What the client
// writes is discarded, so that it never waits on a server that stopped reading.
func negotiateWithServer(t testing.TB, mode, script string) error {
	t.Helper()
	client, server := net.Pipe()
	if err := client.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = io.WriteString(server, script)
		_ = server.Close()
	})

	err := negotiateSTARTTLS(struct {
		io.Reader
		io.Writer
	}{client, io.Discard}, mode)

	_ = client.Close()
	wg.Wait()
	return err
}

func TestNegotiateSTARTTLS(t *testing.T) {
	long := strings.Repeat("x", starttlsMaxLineBytes)
	endless := strings.Repeat("250-PIPELINING\r\n", starttlsMaxLines+1)
	tests := []struct {
		name   string
		mode   string
		script string
		errMsg string // empty when the exchange must succeed
	}{
		{"accepts a multi-line SMTP greeting and EHLO reply", starttlsSMTP,
			"220-mx.test ESMTP\r\n220 hello\r\n250-mx.test\r\n250-starttls\r\n250 SIZE 10\r\n" +
				"220 go ahead\r\n", ""},
		{"refuses an SMTP greeting other than 220", starttlsSMTP,
			"554 no service for you\r\n", `replied "554 no service for you"`},
		{"refuses an SMTP line without a reply code", starttlsSMTP,
			"hello there\r\n", "malformed reply line"},
		{"refuses an SMTP line longer than 4 KiB", starttlsSMTP,
			long + "\r\n", "line longer than"},
		{"refuses an EHLO reply that never ends", starttlsSMTP,
			"220 mx\r\n" + endless, "reply longer than"},
		{"does not count the server's name in EHLO as an extension", starttlsSMTP,
			"220 mx\r\n250-STARTTLS\r\n250 SIZE 10\r\n", "does not offer STARTTLS"},
		{"refuses bytes sent after the SMTP STARTTLS reply", starttlsSMTP,
			"220 mx\r\n250-mx\r\n250 STARTTLS\r\n220 go\r\ninjected\r\n",
			"after its STARTTLS reply"},
		{"reports an SMTP server that hangs up early", starttlsSMTP,
			"220 mx\r\n", "unexpected EOF"},
		{"asks an IMAP server for capabilities its greeting leaves out", starttlsIMAP,
			"* OK ready\r\n* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK done\r\na2 OK go\r\n", ""},
		{"takes capabilities from the IMAP greeting", starttlsIMAP,
			"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\na2 OK Begin TLS negotiation now\r\n",
			""},
		{"refuses an IMAP PREAUTH greeting", starttlsIMAP,
			"* PREAUTH welcome\r\n", "server greeted"},
		{"refuses an IMAP STARTTLS answered with NO", starttlsIMAP,
			"* OK [CAPABILITY STARTTLS] hi\r\na2 NO not now\r\n", `replied "a2 NO not now"`},
		{"refuses an IMAP reply with the wrong tag", starttlsIMAP,
			"* OK [CAPABILITY STARTTLS] hi\r\nzz OK\r\n", `replied "zz OK"`},
		{"does nothing for implicit TLS", starttlsNone, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := negotiateWithServer(t, tt.mode, tt.script)
			switch {
			case tt.errMsg == "" && err != nil:
				t.Errorf("negotiation failed: %v", err)
			case tt.errMsg != "" && (err == nil || !strings.Contains(err.Error(), tt.errMsg)):
				t.Errorf("got error %v, want one mentioning %q", err, tt.errMsg)
			}
		})
	}
}

// fuzzNegotiation checks that no server can make the exchange panic or outlast its
// deadline.
func fuzzNegotiation(f *testing.F, mode string, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, script []byte) {
		start := time.Now()
		_ = negotiateWithServer(t, mode, string(script))
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("negotiation took %s", took)
		}
	})
}

func FuzzSMTPNegotiation(f *testing.F) {
	fuzzNegotiation(f, starttlsSMTP,
		"220 mx ESMTP\r\n250-mx\r\n250 STARTTLS\r\n220 ready\r\n",
		"220-a\r\n220 b\r\n250-mx\r\n250-STARTTLS\r\n250 8BITMIME\r\n220 go\r\n",
		"220 mx\r\n250\r\n",
		"220-"+strings.Repeat("a", 5000),
		"999 \r\n",
		"22",
	)
}

func FuzzIMAPNegotiation(f *testing.F) {
	fuzzNegotiation(f, starttlsIMAP,
		"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\na2 OK Begin TLS negotiation now\r\n",
		"* OK ready\r\n* CAPABILITY STARTTLS\r\na1 OK\r\na2 OK\r\n",
		"* OK [CAPABILITY STARTTLS\r\n",
		"* OK\r\n* BYE\r\n",
		"* ok [capability starttls]\r\na2 ok\r\nextra",
		"+ go ahead\r\n"+strconv.Itoa(42),
	)
}
