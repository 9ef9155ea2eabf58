package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAppendWritesChainedRecords(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, 3, 0)

	lines := readLines(t, filepath.Join(dir, CurrentFile))
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3", len(lines))
	}
	prev := ZeroHash
	for i, line := range lines {
		var got Record
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if got.V != SchemaVersion || got.Seq != uint64(i+1) || got.Prev != prev {
			t.Errorf("line %d: v %d seq %d prev %s; want v 1 seq %d prev %s", i+1, got.V, got.Seq,
				got.Prev, i+1, prev)
		}
		kept := got.Time.Location() == time.UTC && got.Decision == DecisionExecuted &&
			got.Alert != nil && got.Alert.Instance == "smtp-out.example.test:465" && got.DurationMS == 12.5
		if !kept {
			t.Errorf("line %d: fields not kept: %+v", i+1, got)
		}
		prev = Hash(line)
	}
	header := `{"v":1,"time":"2026-03-01T12:00:00.001Z","seq":1,"prev":"` + ZeroHash + `",`
	if !strings.HasPrefix(string(lines[0]), header) {
		t.Errorf("line 1 does not start with the header in order: %s", lines[0])
	}
}

func TestAppendRefusesAnUnknownDecision(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{})
	err := l.Append(Record{Decision: "approved"})
	if err == nil || !strings.Contains(err.Error(), `unknown decision "approved"`) {
		t.Fatalf("got %v, want the unknown decision refused", err)
	}
}

func TestAppendAfterCloseFails(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(stepRecord("run-1", 0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: got %v, want ErrClosed", err)
	}
	if err := l.AppendAsync(stepRecord("run-1", 0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("AppendAsync after Close: got %v, want ErrClosed", err)
	}
}

func TestLogReopenedContinuesTheChain(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, 5, 0)
	writeLog(t, dir, 5, 0)

	res, err := verifyDir(t, dir)
	if err != nil || res.Records != 10 || res.LastSeq != 10 || res.StartsMidChain {
		t.Fatalf("got %+v, %v; want 10 records from seq 1", res, err)
	}
}

func TestLogOpenRefusesASecondWriter(t *testing.T) {
	dir := t.TempDir()
	openLog(t, dir, Options{})
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: got %v, want ErrLocked", err)
	}
}

func TestRotationKeepsTheChainAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, 200, 8<<10)

	paths := files(t, dir)
	if len(paths) < 3 {
		t.Fatalf("got %d files, want rotation into at least 3", len(paths))
	}
	for _, p := range paths[:len(paths)-1] {
		seq, _ := rotatedSeq(p)
		var first Record
		if err := json.Unmarshal(readLines(t, p)[0], &first); err != nil {
			t.Fatal(err)
		}
		if first.Seq != seq {
			t.Errorf("%s starts with seq %d", filepath.Base(p), first.Seq)
		}
		if fi, _ := os.Stat(p); fi.Size() > 8<<10 {
			t.Errorf("%s has %d bytes, more than the maximum", filepath.Base(p), fi.Size())
		}
	}
	res, err := verifyDir(t, dir)
	if err != nil || res.Records != 200 || res.Files != len(paths) {
		t.Fatalf("got %+v, %v; want 200 records in %d files", res, err, len(paths))
	}
}

func TestRotationInterruptedBeforeANewFileContinues(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, 60, 4<<10)
	// as if the process died between renaming audit.jsonl and creating the next one
	paths := files(t, dir)
	current := paths[len(paths)-1]
	var first Record
	if err := json.Unmarshal(readLines(t, current)[0], &first); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(current, filepath.Join(dir, rotatedName(first.Seq))); err != nil {
		t.Fatal(err)
	}

	writeLog(t, dir, 5, 4<<10)
	res, err := verifyDir(t, dir)
	if err != nil || res.Records != 65 {
		t.Fatalf("got %+v, %v; want 65 records", res, err)
	}
}

func TestAppendConcurrentlyKeepsSeqsUniqueAndComplete(t *testing.T) {
	const writers, each = 8, 500
	dir := t.TempDir()
	l := openLog(t, dir, Options{MaxFileSize: 64 << 10})

	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				r := stepRecord(fmt.Sprintf("run-%d", w), i)
				add := l.Append
				if i%4 == 0 {
					add = l.AppendAsync
				}
				if err := add(r); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	res, err := verifyDir(t, dir)
	if err != nil || res.Records != writers*each || res.LastSeq != writers*each {
		t.Fatalf("got %+v, %v; want %d records", res, err, writers*each)
	}
	checkEveryRecordOnce(t, dir, writers, each)
}

// checkEveryRecordOnce reads dir back and checks that seqs run from 1 without a gap and
// that each writer's records are all there once.
func checkEveryRecordOnce(t *testing.T, dir string, writers, each int) {
	t.Helper()
	seen := map[string]bool{}
	var want uint64 = 1
	for e, err := range Read(dir, Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Record.Seq != want {
			t.Fatalf("seq %d where %d was expected", e.Record.Seq, want)
		}
		want++
		key := e.Record.RunID + "/" + e.Record.Step
		if seen[key] {
			t.Fatalf("%s written twice", key)
		}
		seen[key] = true
	}
	if len(seen) != writers*each {
		t.Fatalf("read %d distinct records, want %d", len(seen), writers*each)
	}
}

func TestAppendAsyncIsSyncedInTheBackground(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{})
	if err := l.AppendAsync(stepRecord("run-1", 0)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * asyncSyncInterval)
	for {
		l.syncMu.Lock()
		synced := l.synced
		l.syncMu.Unlock()
		if synced == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("record 1 not synced after %s", 5*asyncSyncInterval)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAppendSharesFsyncs(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{})
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := range 20 {
				if err := l.Append(stepRecord("run-1", i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if syncs := l.syncs.Load(); syncs >= 64*20 {
		t.Fatalf("%d fsyncs for %d records: none was shared", syncs, 64*20)
	}
}
