package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTornFinalLineIsSetAsideAndRecorded(t *testing.T) {
	tests := []struct {
		name    string
		tear    func(t *testing.T, last []byte) []byte // the bytes that replace the last line
		problem string
	}{
		{
			name: "sets aside a final line cut before its newline",
			tear: func(_ *testing.T, last []byte) []byte {
				return last[:len(last)/2]
			},
			problem: "line 5: truncated final line: no newline after it",
		},
		{
			name: "sets aside a final line of zeros a power loss left",
			tear: func(_ *testing.T, last []byte) []byte {
				return append(make([]byte, 300), '\n')
			},
			problem: "line 5: not a JSON object",
		},
		{
			name: "sets aside a complete final line that is not valid JSON",
			tear: func(_ *testing.T, last []byte) []byte {
				return append(bytes.Clone(last[:len(last)-10]), '\n')
			},
			problem: "line 5: not a valid record:",
		},
		{
			name: "sets aside a complete final line whose prev hash is broken",
			tear: func(t *testing.T, last []byte) []byte {
				return append(rehash(t, last, strings.Repeat("ab", 32)), '\n')
			},
			problem: "line 5: prev hash does not match line 4",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeLog(t, dir, 5, 0)
			path := filepath.Join(dir, CurrentFile)
			lines := readLines(t, path)
			writeLines(t, path, lines[:4])
			torn := tt.tear(t, lines[4])
			appendBytes(t, path, torn)

			if err := openLog(t, dir, Options{}).Close(); err != nil {
				t.Fatal(err)
			}

			checkSetAside(t, dir, torn, tt.problem)
			res, err := verifyDir(t, dir)
			if err != nil || res.Records != 5 {
				t.Fatalf("after recovery: %+v, %v; want 4 records and the recovery", res, err)
			}
		})
	}
}

func TestTornOnlyLineOfANewFileIsRecovered(t *testing.T) {
	dir := t.TempDir()
	torn := []byte(`{"v":1,"time":"2026-03-01T12:00:00Z","seq":1,"prev":"00000`)
	appendBytes(t, filepath.Join(dir, CurrentFile), torn)

	if err := openLog(t, dir, Options{}).Close(); err != nil {
		t.Fatal(err)
	}

	rec := checkSetAside(t, dir, torn, "line 1: truncated final line")
	if rec.Seq != 1 || rec.Prev != ZeroHash {
		t.Fatalf("the recovery record is seq %d prev %s; want the first of a new chain",
			rec.Seq, rec.Prev)
	}
}

func TestLogOpenRefusesDamageBeforeTheFinalLine(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, 5, 0)
	path := filepath.Join(dir, CurrentFile)
	lines := readLines(t, path)
	lines[2] = lines[2][:20]
	writeLines(t, path, lines)
	before, _ := os.ReadFile(path)

	_, err := Open(dir, Options{})
	if err == nil || !strings.Contains(relative(err, dir), "audit.jsonl:3: not a valid record") {
		t.Fatalf("got %v, want Open to refuse line 3", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("Open changed a file it refused")
	}
	if torn, _ := filepath.Glob(filepath.Join(dir, tornPrefix+"*")); len(torn) != 0 {
		t.Fatalf("Open set aside %v from a file it refused", torn)
	}
}

// checkSetAside checks that dir holds one torn file with exactly torn, and that the last
// record of audit.jsonl records it; it returns that record.
func checkSetAside(t *testing.T, dir string, torn []byte, problem string) Record {
	t.Helper()
	tornFiles, _ := filepath.Glob(filepath.Join(dir, tornPrefix+"*"))
	if len(tornFiles) != 1 {
		t.Fatalf("got torn files %v, want one", tornFiles)
	}
	got, _ := os.ReadFile(tornFiles[0])
	if !bytes.Equal(got, torn) {
		t.Fatalf("the torn file holds %q, want %q", got, torn)
	}
	lines := readLines(t, filepath.Join(dir, CurrentFile))
	var rec Record
	if err := json.Unmarshal(lines[len(lines)-1], &rec); err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(tornFiles[0])
	wantReason := fmt.Sprintf("torn final line set aside: %d bytes in %s (%s", len(torn), name, problem)
	if rec.Decision != DecisionRecovered || !strings.HasPrefix(rec.Reason, wantReason) {
		t.Fatalf("last record is %s %q, want recovered %q", rec.Decision, rec.Reason, wantReason)
	}
	return rec
}

// rehash returns line with its prev replaced.
func rehash(t *testing.T, line []byte, prev string) []byte {
	t.Helper()
	var rec map[string]any
	if err := json.Unmarshal(line, &rec); err != nil {
		t.Fatal(err)
	}
	old := rec["prev"].(string)
	return bytes.Replace(line, []byte(old), []byte(prev), 1)
}

func appendBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}
