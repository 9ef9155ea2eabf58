package audit

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a fake clock that moves a millisecond each time it is read.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

// testARN is the certificate the records are about.
const testARN = "arn:aws:acm:eu-west-1:123456789012:certificate/abc"

// stepRecord is a record like the engine writes for a step of a run.
func stepRecord(run string, i int) Record {
	return Record{
		RunID:  run,
		Policy: "renew-smtp-certificate",
		Alert: &Alert{
			Fingerprint: "3f1d2a9c8b7e6d5f", Alertname: "BlackboxTLSCertExpiringSoonWarning",
			Instance: "smtp-out.example.test:465", Status: "firing",
		},
		Step:     fmt.Sprintf("step-%d", i),
		Action:   "aws.acm.describe_certificate",
		Mode:     "live",
		Decision: DecisionExecuted,
		Reason:   "the stored certificate is older than the one served",
		Request: map[string]any{
			"service": "acm", "operation": "DescribeCertificate",
			"input": map[string]any{"CertificateArn": testARN},
		},
		Result:     map[string]any{"not_after": "2026-04-01T00:00:00Z", "index": i},
		DurationMS: 12.5,
	}
}

// openLog opens a log in dir and closes it when the test ends, unless the test did.
func openLog(t *testing.T, dir string, opts Options) *Log {
	t.Helper()
	if opts.Now == nil {
		opts.Now = newClock().now
	}
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("opening the log: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// writeLog appends n step records to a new log in dir and closes it.
func writeLog(t *testing.T, dir string, n int, maxFileSize int64) {
	t.Helper()
	l := openLog(t, dir, Options{MaxFileSize: maxFileSize})
	for i := range n {
		if err := l.Append(stepRecord("run-1", i)); err != nil {
			t.Fatalf("appending record %d: %v", i, err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatalf("closing the log: %v", err)
	}
}

// files returns the audit files of dir in chain order.
func files(t *testing.T, dir string) []string {
	t.Helper()
	paths, err := Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

// readLines returns the lines of path without their newlines; a final line without one
// is returned as it is.
func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(b, []byte{'\n'})
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	for i, l := range lines {
		lines[i] = bytes.TrimSuffix(l, []byte{'\n'})
	}
	return lines
}

// writeLines writes lines to path, each followed by a newline.
func writeLines(t *testing.T, path string, lines [][]byte) {
	t.Helper()
	var b bytes.Buffer
	for _, l := range lines {
		b.Write(l)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, b.Bytes(), 0o640); err != nil {
		t.Fatal(err)
	}
}

// copyDir copies the regular files of src into a new directory and returns it.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// verifyDir verifies every audit file in dir.
func verifyDir(t *testing.T, dir string) (Result, error) {
	t.Helper()
	return Verify(files(t, dir)...)
}

// relative returns err's message with dir's path left out of file names.
func relative(err error, dir string) string {
	if err == nil {
		return "<nil>"
	}
	return strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), "")
}
