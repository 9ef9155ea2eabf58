package audit

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// fuzzSeeds returns audit files to start from: a valid log, and the same log torn,
// truncated and changed.
func fuzzSeeds(f *testing.F) [][]byte {
	f.Helper()
	dir := f.TempDir()
	l, err := Open(dir, Options{Now: newClock().now})
	if err != nil {
		f.Fatal(err)
	}
	for i := range 3 {
		if err := l.Append(stepRecord("run-1", i)); err != nil {
			f.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		f.Fatal(err)
	}
	valid, err := os.ReadFile(filepath.Join(dir, CurrentFile))
	if err != nil {
		f.Fatal(err)
	}
	return [][]byte{
		valid,
		valid[:len(valid)-7],
		bytes.Replace(valid, []byte(`"seq":2`), []byte(`"seq":3`), 1),
		bytes.Replace(valid, []byte("older"), []byte("newer"), 1),
		append(bytes.Clone(valid), 0, 0, 0, '\n'),
		[]byte("{}\n"),
		[]byte(`{"v":1,"time":"2026-01-01T00:00:00Z","seq":18446744073709551615,"prev":"` +
			ZeroHash[:63] + `1","decision":"received"}` + "\n{"),
		nil,
	}
}

// FuzzVerify feeds arbitrary file contents to Verify: it must never panic, and when it
// accepts a file every line of it must have been counted.
func FuzzVerify(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), CurrentFile)
		if err := os.WriteFile(path, data, 0o640); err != nil {
			t.Fatal(err)
		}
		res, err := Verify(path)
		if err != nil {
			return
		}
		if lines := uint64(bytes.Count(data, []byte{'\n'})); res.Records != lines {
			t.Fatalf("verified %d records in %d lines", res.Records, lines)
		}
	})
}

// FuzzLogOpen opens a log on arbitrary file contents: Open must either refuse it and
// leave it as it was, or recover a log that verifies, with every byte it cut kept in a
// torn file.
func FuzzLogOpen(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, CurrentFile)
		if err := os.WriteFile(path, data, 0o640); err != nil {
			t.Fatal(err)
		}
		l, err := Open(dir, Options{})
		if err != nil {
			if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
				t.Fatalf("Open refused the file (%v) but changed it", err)
			}
			return
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := verifyDir(t, dir); err != nil {
			t.Fatalf("the recovered log does not verify: %v", err)
		}
		checkNothingLost(t, dir, data)
	})
}

// checkNothingLost checks that data is what audit.jsonl starts with, followed by the
// bytes of the torn file when there is one.
func checkNothingLost(t *testing.T, dir string, data []byte) {
	t.Helper()
	current, _ := os.ReadFile(filepath.Join(dir, CurrentFile))
	torn, _ := filepath.Glob(filepath.Join(dir, tornPrefix+"*"))
	kept := len(data)
	var tail []byte
	if len(torn) == 1 {
		tail, _ = os.ReadFile(torn[0])
		kept -= len(tail)
	}
	if kept < 0 || !bytes.Equal(current[:kept], data[:kept]) || !bytes.Equal(data[kept:], tail) {
		t.Fatalf("bytes lost: had %q, now %q and torn %q", data, current, tail)
	}
}
