package actions

import (
	"context"
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/testtls"
)

func TestTLSWaitRenewedRequestSaysWhatItWaitsFor(t *testing.T) {
	action := NewTLSWaitRenewed()
	after := time.Date(2026, 12, 20, 8, 0, 0, 0, time.UTC)
	req, err := action.Request(withDefaults(action, Params{"address": "smtp-out.example.test:587", "after": after}),
		testEnv())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(req)
	want := `{"service":"tls","operation":"ProbeUntilRenewed","input":{"address":"smtp-out.example.test:587",` +
		`"after":"2026-12-20T08:00:00Z","server_name":"smtp-out.example.test","starttls":"smtp","timeout":"10s",` +
		`"wait_timeout":"10m0s"}}`
	if string(got) != want {
		t.Errorf("request %s\nwant    %s", got, want)
	}
	if _, err := action.Request(withDefaults(action, Params{"address": "a.test:465"}), testEnv()); err == nil ||
		err.Error() != "after: required, the expiry to move past" {
		t.Errorf("without after: %v", err)
	}
}

func TestTLSWaitRenewed(t *testing.T) {
	ca := testtls.NewCA(t)
	caFile := ca.PEMFile(t)
	now := time.Now()
	old := ca.Leaf(t, testtls.LeafOptions{DNSNames: []string{"*.example.test"}, NotAfter: now.Add(5 * 24 * time.Hour)})
	renewed := ca.Leaf(t, testtls.LeafOptions{DNSNames: []string{"*.example.test"},
		NotAfter: now.Add(90 * 24 * time.Hour)})
	tests := []struct {
		name     string
		mode     testtls.Mode
		swapIn   time.Duration // when the server starts serving the renewed certificate; 0 never
		renewed  bool
		notAfter time.Time
		attempts func(n int64) bool
	}{
		{"a certificate already renewed is seen at the first probe", testtls.ImplicitTLS, time.Nanosecond,
			true, renewed.Leaf.NotAfter, func(n int64) bool { return n == 1 }},
		{"a swap during the wait is seen by a later probe over SMTP STARTTLS", testtls.SMTPStartTLS,
			300 * time.Millisecond, true, renewed.Leaf.NotAfter, func(n int64) bool { return n >= 2 }},
		{"a swap over IMAP STARTTLS is seen too", testtls.IMAPStartTLS,
			300 * time.Millisecond, true, renewed.Leaf.NotAfter, func(n int64) bool { return n >= 2 }},
		{"no swap ends the wait with the expiry last served, not a failure", testtls.ImplicitTLS, 0,
			false, old.Leaf.NotAfter, func(n int64) bool { return n >= 3 }},
	}
	starttls := map[testtls.Mode]string{testtls.ImplicitTLS: "none", testtls.SMTPStartTLS: "smtp",
		testtls.IMAPStartTLS: "imap"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testtls.Serve(t, tt.mode, old)
			if tt.swapIn == time.Nanosecond {
				srv.SetCertificate(renewed)
			} else if tt.swapIn > 0 {
				time.AfterFunc(tt.swapIn, func() { srv.SetCertificate(renewed) })
			}

			start := time.Now()
			facts := mustRun(t, NewTLSWaitRenewed(), Params{"address": srv.Addr(), "starttls": starttls[tt.mode],
				"server_name": "smtp-out.example.test", "ca_file": caFile, "after": old.Leaf.NotAfter,
				"wait_timeout": 1500 * time.Millisecond, "interval": 50 * time.Millisecond})
			wantFactsAsDeclared(t, NewTLSWaitRenewed(), facts)
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("the wait took %s", took)
			}
			if facts["renewed"] != tt.renewed || !facts["not_after"].(time.Time).Equal(tt.notAfter) ||
				!tt.attempts(facts["attempts"].(int64)) || facts["last_error"] != "" ||
				facts["verified"] != true || facts["verify_error"] != "" {
				t.Errorf("facts %v, want renewed %v, not_after %s", facts, tt.renewed, tt.notAfter)
			}
		})
	}
}

func TestTLSWaitRenewedReportsAChainThatDoesNotVerify(t *testing.T) {
	ca := testtls.NewCA(t)
	srv := testtls.Serve(t, testtls.ImplicitTLS, ca.Leaf(t, testtls.LeafOptions{DNSNames: []string{"*.example.test"},
		NotAfter: time.Now().Add(90 * 24 * time.Hour)}))

	facts := mustRun(t, NewTLSWaitRenewed(), Params{"address": srv.Addr(), "server_name": "smtp-out.example.test",
		"after": time.Now(), "interval": 50 * time.Millisecond})
	if facts["renewed"] != true || facts["verified"] != false ||
		!strings.Contains(facts["verify_error"].(string), "unknown authority") {
		t.Errorf("facts %v, want renewed but not verified against the system roots", facts)
	}
}

func TestTLSWaitRenewedFailsWhenNoProbeGetsACertificate(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()

	_, err = runAction(t, NewTLSWaitRenewed(), Params{"address": "127.0.0.1:" + strconv.Itoa(port),
		"after": time.Now(), "wait_timeout": 300 * time.Millisecond, "interval": 50 * time.Millisecond})
	if reasonOf(err) != ReasonUnavailable || !strings.HasPrefix(err.Error(), "no probe of 127.0.0.1:") ||
		!strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v, want unavailable, naming the last probe's error", err)
	}
}

func TestTLSWaitRenewedStopsWithItsRun(t *testing.T) {
	ca := testtls.NewCA(t)
	srv := testtls.Serve(t, testtls.ImplicitTLS, ca.Leaf(t, testtls.LeafOptions{}))
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()

	p := withDefaults(NewTLSWaitRenewed(), Params{"address": srv.Addr(), "after": time.Now().Add(time.Hour * 24 * 365),
		"interval": 50 * time.Millisecond})
	start := time.Now()
	_, err := NewTLSWaitRenewed().Run(ctx, p, testEnv())
	if reasonOf(err) != ReasonFailed || time.Since(start) > 2*time.Second {
		t.Fatalf("err = %v after %s, want a prompt failure", err, time.Since(start))
	}
}
