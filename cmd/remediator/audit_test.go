package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remediator/remediator/audit"
)

// writeAuditLog writes n records of two runs to a log in a new directory, rotated into
// several files, and returns the directory.
func writeAuditLog(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	l, err := audit.Open(dir, audit.Options{MaxFileSize: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		err := l.Append(audit.Record{
			RunID: fmt.Sprintf("run-%d", i%2), Policy: "renew-smtp-certificate",
			Alert: &audit.Alert{
				Fingerprint: "3f1d2a9c8b7e6d5f", Alertname: "BlackboxTLSCertExpiringSoonWarning",
				Instance: "smtp-out.example.test:465", Status: "firing",
			},
			Step: fmt.Sprintf("step-%d", i), Action: "tls.probe", Mode: "live",
			Decision: audit.DecisionExecuted, Reason: "certificate expires in 9 days",
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runAudit runs remediator with args and returns its exit status, stdout and stderr.
func runAudit(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestAuditVerifyAcceptsAnUntouchedLog(t *testing.T) {
	dir := writeAuditLog(t, 60)
	files, err := audit.Files(dir)
	if err != nil || len(files) < 3 {
		t.Fatalf("got %d files, %v; want rotation into at least 3", len(files), err)
	}

	code, out, errb := runAudit(t, "audit", "verify", dir)
	want := fmt.Sprintf("OK: 60 records in %d files\n", len(files))
	if code != 0 || !strings.HasPrefix(out, want) || errb != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and %q", code, out, errb, want)
	}
}

func TestAuditVerifyAcceptsFilesInAnyOrder(t *testing.T) {
	dir := writeAuditLog(t, 60)
	files, _ := audit.Files(dir)
	args := []string{"audit", "verify"}
	for i := len(files) - 1; i >= 0; i-- {
		args = append(args, files[i])
	}

	code, out, errb := runAudit(t, args...)
	if code != 0 || !strings.HasPrefix(out, "OK: 60 records") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errb)
	}
}

func TestAuditVerifyNamesTheFirstBadLine(t *testing.T) {
	dir := writeAuditLog(t, 60)
	files, _ := audit.Files(dir)
	first := files[0]
	b, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	lines[1] = strings.Replace(lines[1], "expires in 9 days", "expires in 90 days", 1)
	if err := os.WriteFile(first, []byte(strings.Join(lines, "")), 0o640); err != nil {
		t.Fatal(err)
	}

	code, out, errb := runAudit(t, "audit", "verify", dir)
	want := "FAILED: " + first + ":3: prev hash does not match line 2\n"
	if code != 1 || out != "" || errb != want {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 1 and %q", code, out, errb, want)
	}
}

func TestAuditVerifyFailsWithoutAuditFiles(t *testing.T) {
	dir := t.TempDir()
	code, _, errb := runAudit(t, "audit", "verify", dir)
	if code != 1 || errb != "FAILED: no audit files in "+dir+"\n" {
		t.Fatalf("exit %d, stderr %q", code, errb)
	}
}

func TestAuditVerifyNeedsAPath(t *testing.T) {
	code, _, errb := runAudit(t, "audit", "verify")
	if code != 2 || !strings.Contains(errb, "required argument") {
		t.Fatalf("exit %d, stderr %q; want a usage error", code, errb)
	}
}

func TestAuditShow(t *testing.T) {
	dir := writeAuditLog(t, 6)
	tests := []struct {
		name  string
		args  []string
		lines int
		check func(t *testing.T, line string)
	}{
		{
			name: "prints every record as text", args: nil, lines: 6,
			check: func(t *testing.T, line string) {
				const tail = "/tls.probe  smtp-out.example.test:465  certificate expires in 9 days"
				if !strings.Contains(line, "  executed   renew-smtp-certificate  step-") ||
					!strings.HasSuffix(line, tail) {
					t.Errorf("text line %q", line)
				}
			},
		},
		{
			name: "keeps one run's records", args: []string{"--run", "run-1"}, lines: 3,
			check: func(t *testing.T, line string) {
				if !strings.Contains(line, "step-1/") && !strings.Contains(line, "step-3/") &&
					!strings.Contains(line, "step-5/") {
					t.Errorf("line of another run: %q", line)
				}
			},
		},
		{
			name:  "prints the lines as written for json",
			args:  []string{"--output", "json", "--since", "1h"},
			lines: 6,
			check: func(t *testing.T, line string) {
				var r audit.Record
				err := json.Unmarshal([]byte(line), &r)
				if err != nil || r.V != audit.SchemaVersion {
					t.Errorf("json line %q: %v", line, err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"audit", "show", "--dir", dir}, tt.args...)
			code, out, errb := runAudit(t, args...)
			if code != 0 || errb != "" {
				t.Fatalf("exit %d, stderr %q", code, errb)
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if len(lines) != tt.lines {
				t.Fatalf("got %d lines, want %d:\n%s", len(lines), tt.lines, out)
			}
			for _, line := range lines {
				tt.check(t, line)
			}
		})
	}
}

func TestAuditShowSinceLeavesOutOlderRecords(t *testing.T) {
	dir := writeAuditLog(t, 3)
	f := &auditShowFlags{dir: dir, since: time.Hour, output: "text"}
	var out bytes.Buffer
	if err := showAudit(&out, f, time.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Fatalf("got records older than an hour:\n%s", out.String())
	}
}

func TestAuditShowFailsWithoutALog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "absent")
	if code, _, errb := runAudit(t, "audit", "show", "--dir", dir); code != 1 ||
		!strings.HasPrefix(errb, "no audit log in "+dir) {
		t.Fatalf("exit %d, stderr %q", code, errb)
	}
}
