package audit

import (
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestLogReadFiltersByRunAndSince(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	l := openLog(t, dir, Options{MaxFileSize: 4 << 10, Now: clk.now})
	for i := range 40 {
		if err := l.Append(stepRecord([]string{"run-a", "run-b"}[i%2], i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	since := time.Date(2026, 3, 1, 12, 0, 0, 31*int(time.Millisecond), time.UTC)

	tests := []struct {
		name   string
		filter Filter
		want   []uint64
	}{
		{"reads every record oldest first across rotated files", Filter{}, seqs(1, 40)},
		{"keeps one run's records", Filter{RunID: "run-b"}, evens(2, 40)},
		{"keeps the records stamped since a time", Filter{Since: since}, seqs(31, 40)},
		{"keeps one run's records since a time", Filter{RunID: "run-a", Since: since},
			[]uint64{31, 33, 35, 37, 39}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []uint64
			for e, err := range Read(dir, tt.filter) {
				if err != nil {
					t.Fatal(err)
				}
				if len(e.Line) == 0 || e.LineNo == 0 || e.File == "" {
					t.Fatalf("entry without its place: %+v", e)
				}
				got = append(got, e.Record.Seq)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got seqs %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLogReadLeavesOutALineBeingWritten(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, 3, 0)
	partial := []byte(`{"v":1,"time":"2026-03-01T12:00:00Z","se`)
	appendBytes(t, filepath.Join(dir, CurrentFile), partial)

	n := 0
	for _, err := range Read(dir, Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 3 {
		t.Fatalf("read %d records, want 3", n)
	}
}

func TestLogReadReportsAMissingDirectory(t *testing.T) {
	for _, err := range Read(filepath.Join(t.TempDir(), "absent"), Filter{}) {
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("got %v, want a missing directory reported", err)
		}
		return
	}
	t.Fatal("got no error for a missing directory")
}

func seqs(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func evens(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s += 2 {
		out = append(out, s)
	}
	return out
}
