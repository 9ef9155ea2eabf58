package state

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func openJournal(t *testing.T, dir string, max int64) (*Journal, []JournalEntry) {
	t.Helper()
	j, pending, err := OpenJournal(dir, JournalOptions{MaxSegmentSize: max})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close() })
	return j, pending
}

func keys(es []JournalEntry) string {
	var out []string
	for _, e := range es {
		out = append(out, e.Key+"="+string(e.Value))
	}
	return fmt.Sprint(out)
}

func TestJournalReturnsWhatIsNotDoneAfterAReopen(t *testing.T) {
	dir := t.TempDir()
	j, _ := openJournal(t, dir, 0)
	for i := range 5 {
		if err := j.Append(fmt.Sprint("k", i), []byte(fmt.Sprint("v", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Done("k1", "k3"); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	_, pending := openJournal(t, dir, 0)
	if got := keys(pending); got != "[k0=v0 k2=v2 k4=v4]" {
		t.Errorf("pending %s", got)
	}
}

func TestJournalCutsATornTailOff(t *testing.T) {
	dir := t.TempDir()
	j, _ := openJournal(t, dir, 0)
	if err := j.Append("kept", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := j.Append("torn", []byte("a value long enough to tear")); err != nil {
		t.Fatal(err)
	}
	_ = j.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "journal-*.log"))
	path := segs[len(segs)-1]
	info, _ := os.Stat(path)
	if err := os.Truncate(path, info.Size()-5); err != nil {
		t.Fatal(err)
	}
	j2, pending := openJournal(t, dir, 0)
	if got := keys(pending); got != "[kept=v]" {
		t.Fatalf("pending after a torn tail: %s", got)
	}
	if err := j2.Append("after", []byte("x")); err != nil {
		t.Fatal(err)
	}
	_ = j2.Close()
	_, pending = openJournal(t, dir, 0)
	if got := keys(pending); got != "[kept=v after=x]" {
		t.Errorf("appends after recovery: %s", got)
	}
}

func TestJournalRefusesDamageBeforeTheLastSegment(t *testing.T) {
	dir := t.TempDir()
	j, _ := openJournal(t, dir, 100)
	for i := range 6 {
		if err := j.Append(fmt.Sprint("k", i), make([]byte, 40)); err != nil {
			t.Fatal(err)
		}
	}
	_ = j.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "journal-*.log"))
	if len(segs) < 3 {
		t.Fatalf("%d segments, want rotation", len(segs))
	}
	raw, _ := os.ReadFile(segs[0])
	raw[len(raw)-1] ^= 0xff
	if err := os.WriteFile(segs[0], raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenJournal(dir, JournalOptions{MaxSegmentSize: 100}); err == nil {
		t.Fatal("a damaged older segment was accepted")
	}
}

func TestJournalDeletesSegmentsOnceAllTheirEntriesAreDone(t *testing.T) {
	dir := t.TempDir()
	j, _ := openJournal(t, dir, 100)
	var all []string
	for i := range 10 {
		k := fmt.Sprint("k", i)
		all = append(all, k)
		if err := j.Append(k, make([]byte, 40)); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Done(all[1:]...); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "journal-*.log"))
	if len(segs) < 3 {
		t.Fatalf("the segment holding k0 and those after it must stay: %d left", len(segs))
	}
	if err := j.Done("k0"); err != nil {
		t.Fatal(err)
	}
	segs, _ = filepath.Glob(filepath.Join(dir, "journal-*.log"))
	if len(segs) != 1 {
		t.Errorf("%d segments left once everything was done, want only the active one", len(segs))
	}
	_ = j.Close()
	_, pending := openJournal(t, dir, 100)
	if len(pending) != 0 {
		t.Errorf("pending after all done: %s", keys(pending))
	}
}

func TestJournalConcurrentAppendsAreAllKept(t *testing.T) {
	dir := t.TempDir()
	j, _ := openJournal(t, dir, 4096)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				if err := j.Append(fmt.Sprintf("g%d-%03d", g, i), []byte("v")); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	_ = j.Close()
	_, pending := openJournal(t, dir, 4096)
	if len(pending) != 800 {
		t.Errorf("%d entries after reopen, want 800", len(pending))
	}
}

func TestJournalKeepsEntriesAcrossRotationsUnderConcurrency(t *testing.T) {
	dir := t.TempDir()
	j, _ := openJournal(t, dir, 512)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				k := fmt.Sprintf("g%d-%03d", g, i)
				if err := j.Append(k, []byte("head:"), []byte(k)); err != nil {
					t.Error(err)
				}
				if i%2 == 0 {
					if err := j.Done(k); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j2, pending := openJournal(t, dir, 512)
	if len(pending) != 200 {
		t.Fatalf("%d entries after reopen, want the 200 never done", len(pending))
	}
	for _, e := range pending {
		if string(e.Value) != "head:"+e.Key {
			t.Fatalf("entry %s came back as %q, want its parts joined", e.Key, e.Value)
		}
	}
	done := make([]string, 0, len(pending))
	for _, e := range pending {
		done = append(done, e.Key)
	}
	if err := j2.Done(done...); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "journal-*.log"))
	if len(segs) != 1 {
		t.Errorf("%d segments left once everything was done, want only the active one", len(segs))
	}
}

func TestJournalWritesDoneMarksWithoutAnotherAppend(t *testing.T) {
	dir := t.TempDir()
	j, _ := openJournal(t, dir, 0)
	defer j.Close()
	for _, k := range []string{"a", "b"} {
		if err := j.Append(k, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Done("a"); err != nil {
		t.Fatal(err)
	}

	// what a crash would leave, once the marks had their time to reach the file
	var pending []JournalEntry
	for range 100 {
		time.Sleep(doneFlushDelay / 5)
		copied := t.TempDir()
		segs, _ := filepath.Glob(filepath.Join(dir, "journal-*.log"))
		for _, seg := range segs {
			data, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(copied, filepath.Base(seg)), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		c, p := openJournal(t, copied, 0)
		_ = c.Close()
		if pending = p; keys(p) == "[b=v]" {
			return
		}
	}
	t.Fatalf("after waiting, the file still holds %s, want only [b=v]", keys(pending))
}

func FuzzJournalOpen(f *testing.F) {
	f.Add([]byte{})
	f.Add(encodeJournalRecord(journalAppend, appendKey(nil, "k")))
	f.Add(append(encodeJournalRecord(journalAppend, append(appendKey(nil, "k"), 'v')),
		encodeJournalRecord(journalDone, appendKey(nil, "k"))...))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "journal-00000000000000000001.log"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		j, _, err := OpenJournal(dir, JournalOptions{})
		if err != nil {
			return
		}
		if err := j.Append("after", []byte("x")); err != nil {
			t.Fatal(err)
		}
		_ = j.Close()
		_, pending, err := OpenJournal(dir, JournalOptions{})
		if err != nil {
			t.Fatalf("a journal Open accepted does not open again: %v", err)
		}
		if len(pending) == 0 || pending[len(pending)-1].Key != "after" {
			t.Fatalf("the last append is lost: %v", pending)
		}
	})
}
