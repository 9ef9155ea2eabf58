package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// tamperedRecords is the size of the log the tamper tests change.
const tamperedRecords = 300

// writeTamperBase writes the log every tamper test copies: 300 records rotated into at
// least three files.
func writeTamperBase(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeLog(t, dir, tamperedRecords, 32<<10)
	if n := len(files(t, dir)); n < 3 {
		t.Fatalf("the base log has %d files, want at least 3", n)
	}
	return dir
}

func TestVerifyAcceptsAnUntouchedLog(t *testing.T) {
	dir := writeTamperBase(t)
	paths := files(t, dir)

	res, err := Verify(paths...)
	if err != nil {
		t.Fatal(err)
	}
	last := readLines(t, paths[len(paths)-1])
	want := Result{
		Files: len(paths), Records: tamperedRecords, FirstSeq: 1, LastSeq: tamperedRecords,
		LastHash: Hash(last[len(last)-1]),
	}
	if res != want {
		t.Fatalf("got %+v, want %+v", res, want)
	}
}

func TestVerifyOrdersFilesByTheirFirstSeq(t *testing.T) {
	dir := writeTamperBase(t)
	paths := files(t, dir)
	slices.Reverse(paths)

	if res, err := Verify(paths...); err != nil || res.Records != tamperedRecords {
		t.Fatalf("got %+v, %v; want every record verified", res, err)
	}
}

func TestVerifyAcceptsALogWhoseFirstFileWasRemoved(t *testing.T) {
	dir := writeTamperBase(t)
	paths := files(t, dir)
	first := seqOf(t, readLines(t, paths[1])[0])

	res, err := Verify(paths[1:]...)
	if err != nil || !res.StartsMidChain || res.FirstSeq != first {
		t.Fatalf("got %+v, %v; want the rest from seq %d, marked as starting mid-chain",
			res, err, first)
	}
}

// TestVerifyNeedsAnAnchorForTheLastRecord shows what the chain alone cannot prove: that
// nothing was cut from the very end. Result.LastHash compared with a copy kept elsewhere can.
func TestVerifyNeedsAnAnchorForTheLastRecord(t *testing.T) {
	dir := writeTamperBase(t)
	anchor, err := verifyDir(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	current := filepath.Join(dir, CurrentFile)
	lines := readLines(t, current)
	writeLines(t, current, lines[:len(lines)-1])

	res, err := verifyDir(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if res.LastSeq != anchor.LastSeq-1 || res.LastHash == anchor.LastHash {
		t.Fatalf("got %+v; want it to end one record before the anchor %+v", res, anchor)
	}
}

// tamper changes the copy of the base log in dir, whose files are paths, and returns the
// error Verify must report, without dir in file names.
type tamper func(t *testing.T, dir string, paths []string) string

func TestVerifyNamesTheFirstBadLine(t *testing.T) {
	tests := []struct {
		name   string
		tamper tamper
	}{
		{"a changed byte in a middle line is caught by the next line's prev", changeByte},
		{"a changed byte that breaks the JSON is caught at its line", breakJSON},
		{"a changed line whose successor was re-hashed is caught one line later", changeAndRehash},
		{"a dropped line is caught by the seq after it", dropLine},
		{"two swapped lines are caught at the first of them", swapLines},
		{"a repeated line is caught at the copy", repeatLine},
		{"a line of an unknown schema version is refused", unknownVersion},
		{"a change to the first record of the log is caught", changeFirstLine},
		{"audit.jsonl cut in the middle of a line is caught as truncated", cutCurrent},
		{"a rotated file cut in the middle of a line is caught as truncated", cutRotated},
		{"a line cut from the end of a rotated file is caught in the next file", dropLastOfRotated},
		{"a changed last line of a rotated file is caught in the next file", changeLastOfRotated},
		{"a deleted middle rotated file is caught at the file after it", deleteRotated},
		{"a rotated file renamed to another seq is caught", renameRotated},
	}
	base := writeTamperBase(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyDir(t, base)
			want := tt.tamper(t, dir, files(t, dir))

			_, err := verifyDir(t, dir)
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("got %v, want a *LineError", err)
			}
			if got := relative(err, dir); !strings.HasPrefix(got, want) {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// middle is the middle rotated file, and the index of a line in its middle.
func middle(paths []string) (string, int) {
	return paths[1], 9
}

func changeByte(t *testing.T, _ string, paths []string) string {
	path, i := middle(paths)
	lines := readLines(t, path)
	lines[i] = bytes.Replace(lines[i], []byte("older"), []byte("olDer"), 1)
	writeLines(t, path, lines)
	return fmt.Sprintf("%s:%d: prev hash does not match line %d", filepath.Base(path), i+2, i+1)
}

func breakJSON(t *testing.T, _ string, paths []string) string {
	path, i := middle(paths)
	lines := readLines(t, path)
	lines[i] = bytes.Replace(lines[i], []byte(`"seq":`), []byte(`"seq";`), 1)
	writeLines(t, path, lines)
	return fmt.Sprintf("%s:%d: not a valid record: invalid character ';'", filepath.Base(path), i+1)
}

func changeAndRehash(t *testing.T, _ string, paths []string) string {
	path, i := middle(paths)
	lines := readLines(t, path)
	lines[i] = bytes.Replace(lines[i], []byte(`"mode":"live"`), []byte(`"mode":"dry-run"`), 1)
	lines[i+1] = rehash(t, lines[i+1], Hash(lines[i]))
	writeLines(t, path, lines)
	return fmt.Sprintf("%s:%d: prev hash does not match line %d", filepath.Base(path), i+3, i+2)
}

func dropLine(t *testing.T, _ string, paths []string) string {
	path, i := middle(paths)
	lines := readLines(t, path)
	seq := seqOf(t, lines[i])
	writeLines(t, path, slices.Delete(lines, i, i+1))
	return missing(path, i+1, seq+1, seq-1)
}

func swapLines(t *testing.T, _ string, paths []string) string {
	path, i := middle(paths)
	lines := readLines(t, path)
	seq := seqOf(t, lines[i])
	lines[i], lines[i+1] = lines[i+1], lines[i]
	writeLines(t, path, lines)
	return missing(path, i+1, seq+1, seq-1)
}

func repeatLine(t *testing.T, _ string, paths []string) string {
	path, i := middle(paths)
	lines := readLines(t, path)
	seq := seqOf(t, lines[i])
	writeLines(t, path, slices.Insert(lines, i+1, lines[i]))
	return fmt.Sprintf("%s:%d: seq %d repeats", filepath.Base(path), i+2, seq)
}

func unknownVersion(t *testing.T, _ string, paths []string) string {
	path, i := middle(paths)
	lines := readLines(t, path)
	lines[i] = bytes.Replace(lines[i], []byte(`{"v":1,`), []byte(`{"v":2,`), 1)
	writeLines(t, path, lines)
	return fmt.Sprintf("%s:%d: unknown schema version 2", filepath.Base(path), i+1)
}

func changeFirstLine(t *testing.T, _ string, paths []string) string {
	lines := readLines(t, paths[0])
	lines[0] = bytes.Replace(lines[0], []byte(`"step":"step-0"`), []byte(`"step":"step-X"`), 1)
	writeLines(t, paths[0], lines)
	return filepath.Base(paths[0]) + ":2: prev hash does not match line 1"
}

func cutCurrent(t *testing.T, _ string, paths []string) string {
	path := paths[len(paths)-1]
	return cutInLine(t, path, 4)
}

func cutRotated(t *testing.T, _ string, paths []string) string {
	path, i := middle(paths)
	return cutInLine(t, path, i)
}

// cutInLine truncates path in the middle of its line i, counted from 0.
func cutInLine(t *testing.T, path string, i int) string {
	t.Helper()
	lines := readLines(t, path)
	if len(lines) <= i {
		t.Fatalf("%s has only %d lines", path, len(lines))
	}
	keep := lines[:i+1]
	keep[i] = keep[i][:len(keep[i])/2]
	writeLines(t, path, keep)
	b, _ := os.ReadFile(path)
	if err := os.WriteFile(path, b[:len(b)-1], 0o640); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s:%d: truncated final line: no newline after it", filepath.Base(path), i+1)
}

func dropLastOfRotated(t *testing.T, _ string, paths []string) string {
	path, _ := middle(paths)
	lines := readLines(t, path)
	seq := seqOf(t, lines[len(lines)-1])
	writeLines(t, path, lines[:len(lines)-1])
	return missing(paths[2], 1, seq+1, seq-1)
}

func changeLastOfRotated(t *testing.T, _ string, paths []string) string {
	path, _ := middle(paths)
	lines := readLines(t, path)
	n := len(lines)
	lines[n-1] = bytes.Replace(lines[n-1], []byte(`"executed"`), []byte(`"skipped"`), 1)
	writeLines(t, path, lines)
	return fmt.Sprintf("%s:1: prev hash does not match %s:%d", filepath.Base(paths[2]),
		filepath.Base(path), n)
}

func deleteRotated(t *testing.T, _ string, paths []string) string {
	path, _ := middle(paths)
	before := readLines(t, paths[0])
	after := readLines(t, paths[2])
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	last, next := seqOf(t, before[len(before)-1]), seqOf(t, after[0])
	return fmt.Sprintf("%s:1: seq %d follows %d: %d records are missing",
		filepath.Base(paths[2]), next, last, next-last-1)
}

func renameRotated(t *testing.T, dir string, paths []string) string {
	path, _ := middle(paths)
	seq := seqOf(t, readLines(t, path)[0])
	renamed := filepath.Join(dir, rotatedName(seq+1))
	if err := os.Rename(path, renamed); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s:1: seq %d, but the file name says %d", filepath.Base(renamed),
		seq, seq+1)
}

func seqOf(t *testing.T, line []byte) uint64 {
	t.Helper()
	var h struct {
		Seq uint64 `json:"seq"`
	}
	if err := json.Unmarshal(line, &h); err != nil {
		t.Fatal(err)
	}
	return h.Seq
}

// missing is the error for seq following prev at path:line.
func missing(path string, line int, seq, prev uint64) string {
	return fmt.Sprintf("%s:%d: seq %d follows %d: a record is missing", filepath.Base(path), line,
		seq, prev)
}
